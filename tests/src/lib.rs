//! Test helpers shared by the integration suites.

pub mod smtp;

pub mod app;

pub mod process;

pub mod browser;

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
