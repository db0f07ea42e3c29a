//! Test helpers shared by the integration suites.

pub mod smtp;

pub mod app;

pub mod process;

pub mod browser;

pub mod hostile;

pub mod postfix;

pub mod dovecot;

pub mod bounces;

pub mod webhooks;

/// The value of the series `name{labels}` (spelled exactly as rendered) in a `/metrics` text, if
/// exported.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

/// Runs each named `async fn(Stack)` as a test on both stacks, in modules `postgres` and `sqlite`.
#[macro_export]
macro_rules! on_both_stacks {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::app::Stack::Postgres).await
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::app::Stack::Sqlite).await
                }
            )+
        }
    };
}
