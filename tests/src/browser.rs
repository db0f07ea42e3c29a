//! `Browser`: a real headless Chromium, driven through its own `chromedriver` over WebDriver, for
//! the end-to-end tests of the pages. Each test gets one, with a download folder of its own, and
//! saves a screenshot at every step under `tests/screenshots/<stack>/<test>/`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::app::{Stack, free_port};

/// How long a step waits for the page before failing. Generous for a loaded CI machine: a passing
/// test never waits it out.
pub const BROWSER_PATIENCE: Duration = Duration::from_secs(60);

/// Pause between two looks at the page while waiting.
const POLL: Duration = Duration::from_millis(100);

/// How long `chromedriver` may take to answer its first `/status`.
const DRIVER_START: Duration = Duration::from_secs(20);

/// The Chromium of Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";

/// What to do when the browser tools are missing: the tests fail rather than pass unseen.
const INSTALL_HINT: &str = "run scripts/test, which installs Debian's chromium and \
    chromium-driver when chromedriver is missing (CI runs it), or `apt-get install chromium \
    chromium-driver`";

/// Text of the elements matching `arguments[0]`, as a reader sees it: `textContent` with runs of
/// whitespace collapsed (not `innerText`, which CSS such as `text-transform` changes).
const TEXTS: &str = "return Array.from(document.querySelectorAll(arguments[0]), \
    e => e.textContent.replace(/\\s+/g, ' ').trim());";

/// A `chromedriver` child process on its own port, killed by its PID when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it reports ready. A port taken in the
    /// meantime makes it exit: another port is tried.
    fn start() -> Driver {
        assert!(
            on_path("chromedriver"),
            "chromedriver is not installed (not on PATH): {INSTALL_HINT}"
        );
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is not installed: {INSTALL_HINT}"
        );
        let mut last_exit = None;
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("chromedriver does not start ({e}): {INSTALL_HINT}"));
            let mut driver = Driver { child, port };
            let deadline = Instant::now() + DRIVER_START;
            while Instant::now() < deadline {
                if let Some(status) = driver.child.try_wait().unwrap() {
                    last_exit = Some(status);
                    break;
                }
                if driver
                    .request("GET", "/status")
                    .is_some_and(|body| body.contains("\"ready\":true"))
                {
                    return driver;
                }
                std::thread::sleep(POLL);
            }
            assert!(
                last_exit.is_some(),
                "chromedriver did not answer on port {port} within {DRIVER_START:?}"
            );
        }
        panic!("chromedriver keeps exiting ({last_exit:?}): {INSTALL_HINT}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A bodiless HTTP/1.1 request to the driver over a plain socket (usable in `Drop`, outside
    /// any runtime); the response's body, or `None` when it does not answer.
    fn request(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        // chromedriver keeps the connection open: read the head, then `Content-Length` bytes.
        let mut received = Vec::new();
        let mut buffer = [0; 4096];
        loop {
            let n = stream.read(&mut buffer).ok()?;
            if n == 0 {
                return None;
            }
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())?;
            if body.len() >= length {
                return Some(body.to_owned());
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `Child::kill` signals this PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program` is an executable file in a folder of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Headless Chromium in a WebDriver session, for one test.
pub struct Browser {
    client: Client,
    session: Option<String>,
    driver: Driver,
    downloads: tempfile::TempDir,
    screenshots: PathBuf,
    step: AtomicU32,
}

impl Browser {
    /// Starts `chromedriver` and a Chromium session for the test `name` on `stack`; its
    /// screenshots go to `tests/screenshots/<stack>/<name>/` (emptied first).
    ///
    /// Panics, telling how to install them, when `chromedriver` or Chromium is missing.
    pub async fn start(stack: Stack, name: &str) -> Browser {
        let driver = Driver::start();
        let downloads = tempfile::tempdir().unwrap();
        let screenshots = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("screenshots")
            .join(match stack {
                Stack::Postgres => "postgres",
                Stack::Sqlite => "sqlite",
            })
            .join(name);
        let _ = std::fs::remove_dir_all(&screenshots);
        std::fs::create_dir_all(&screenshots).unwrap();

        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    // Containers often have a small /dev/shm, where Chromium would crash.
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                },
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("no Chromium session from chromedriver: {e}"));
        let session = client.session_id().await.unwrap();
        Browser {
            client,
            session,
            driver,
            downloads,
            screenshots,
            step: AtomicU32::new(0),
        }
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The folder the browser downloads into.
    pub fn downloads(&self) -> &Path {
        self.downloads.path()
    }

    /// Opens `url` and waits for its document to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Saves a PNG of the page as `<NN>-<step>.png` in this test's screenshot folder.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let n = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.screenshots.join(format!("{n:02}-{step}.png"));
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs `script` in the page (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running a script in the page: {e}"))
    }

    /// The text of every element matching `selector`, in document order.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let texts = self.execute(TEXTS, vec![json!(selector)]).await;
        serde_json::from_value(texts).expect("a list of texts")
    }

    /// The text of the first element matching `selector`, if any.
    pub async fn text(&self, selector: &str) -> Option<String> {
        self.texts(selector).await.into_iter().next()
    }

    /// Attribute `name` of every element matching `selector` that has it, in document order.
    pub async fn attributes(&self, selector: &str, name: &str) -> Vec<String> {
        let values = self
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0]), \
                 e => e.getAttribute(arguments[1])).filter(v => v !== null);",
                vec![json!(selector), json!(name)],
            )
            .await;
        serde_json::from_value(values).expect("a list of attribute values")
    }

    /// The whole page as a reader sees it.
    pub async fn page_text(&self) -> String {
        self.text("body").await.unwrap_or_default()
    }

    /// Polls `check` until it gives a value; after [`BROWSER_PATIENCE`] fails the test with
    /// `what`, the page's text and a screenshot.
    pub async fn wait_until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        self.poll(what, async || check().await.ok_or_else(String::new))
            .await
    }

    /// Waits for an element matching `selector` whose text satisfies `accept`; returns that text.
    pub async fn wait_for_text(&self, selector: &str, accept: impl Fn(&str) -> bool) -> String {
        let what = format!("the text of {selector}");
        self.poll(&what, async || {
            let texts = self.texts(selector).await;
            texts
                .iter()
                .find(|text| accept(text))
                .cloned()
                .ok_or_else(|| format!("{texts:?}"))
        })
        .await
    }

    /// Waits until the first element matching `selector` reads exactly `expected`.
    pub async fn wait_for_exact(&self, selector: &str, expected: &str) {
        let what = format!("{selector} to read {expected:?}");
        self.poll(&what, async || match self.text(selector).await {
            Some(text) if text == expected => Ok(()),
            seen => Err(format!("{seen:?}")),
        })
        .await;
    }

    /// Waits until an element matches `selector`.
    pub async fn wait_for(&self, selector: &str) {
        self.wait_for_count(selector, |n| n > 0).await;
    }

    /// Waits until the number of elements matching `selector` satisfies `accept`; returns it.
    pub async fn wait_for_count(&self, selector: &str, accept: impl Fn(usize) -> bool) -> usize {
        let what = format!("the number of {selector}");
        self.poll(&what, async || {
            let n = self.count(selector).await;
            if accept(n) { Ok(n) } else { Err(n.to_string()) }
        })
        .await
    }

    /// How many elements match `selector` now.
    pub async fn count(&self, selector: &str) -> usize {
        let n = self
            .execute(
                "return document.querySelectorAll(arguments[0]).length;",
                vec![json!(selector)],
            )
            .await;
        n.as_u64().expect("a count") as usize
    }

    /// Clicks the first element matching `selector` once it is there and clickable. A page that
    /// re-renders between finding and clicking (a stale element) is tried again.
    pub async fn click(&self, selector: &str) {
        self.act_on(selector, "click", async |element| element.click().await)
            .await;
    }

    /// Replaces the value of the input matching `selector` with `text`, typed as keys.
    pub async fn fill(&self, selector: &str, text: &str) {
        self.act_on(selector, "fill", async |element| {
            element.clear().await?;
            element.send_keys(text).await
        })
        .await;
    }

    /// Chooses `file` (an absolute path) in the file input matching `selector`, as a person
    /// picking it in the dialog would.
    pub async fn choose_file(&self, selector: &str, file: &Path) {
        assert!(file.is_absolute(), "a file input takes an absolute path");
        let path = file.to_str().expect("a UTF-8 path");
        self.act_on(selector, "choose a file in", async |element| {
            element.send_keys(path).await
        })
        .await;
    }

    /// Selects the option with `value` in the `<select>` matching `selector`.
    pub async fn select(&self, selector: &str, value: &str) {
        self.act_on(selector, "select in", async |element| {
            element.select_by_value(value).await
        })
        .await;
    }

    /// Finds the element matching `selector` and applies `action`, retrying while the element is
    /// missing, stale or not yet interactable.
    async fn act_on(
        &self,
        selector: &str,
        verb: &str,
        mut action: impl AsyncFnMut(Element) -> Result<(), CmdError>,
    ) {
        let what = format!("{verb} {selector}");
        self.poll(&what, async || {
            let result = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => action(element).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => Ok(()),
                Err(e) if retryable(&e) => Err(e.to_string()),
                Err(e) => panic!("{what}: {e}"),
            }
        })
        .await;
    }

    /// Polls `check` until it succeeds; after [`BROWSER_PATIENCE`] fails the test with `what`,
    /// what `check` last saw (its error), the page's text and a screenshot.
    async fn poll<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + BROWSER_PATIENCE;
        loop {
            let seen = match check().await {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() >= deadline {
                let seen = if seen.is_empty() {
                    String::new()
                } else {
                    format!(" (last seen: {seen})")
                };
                self.fail(&format!("timed out waiting for {what}{seen}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for a finished download named `name` in [`Browser::downloads`]; returns its path.
    pub async fn wait_for_download(&self, name: &str) -> PathBuf {
        let path = self.downloads().join(name);
        let what = format!("the download {name}");
        self.wait_until(&what, async || {
            // Chromium writes `<name>.crdownload` and renames it when complete.
            path.is_file().then(|| path.clone())
        })
        .await
    }

    /// Fails the test with `why`, the page's URL and text and a screenshot.
    pub async fn fail(&self, why: &str) -> ! {
        let shot = self.screenshot("failure").await;
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let text = self.page_text().await;
        panic!(
            "{why}\n  page: {url}\n  screenshot: {}\n  text: {text}",
            shot.display()
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit its Chromium (and remove its profile);
        // then the driver itself is killed with `self.driver`.
        if let Some(session) = &self.session {
            let _ = self
                .driver
                .request("DELETE", &format!("/session/{session}"));
        }
    }
}

/// Errors that a moment later may not happen: the page is still rendering.
fn retryable(error: &CmdError) -> bool {
    match error {
        CmdError::Standard(e) => matches!(
            e.error,
            ErrorStatus::NoSuchElement
                | ErrorStatus::StaleElementReference
                | ErrorStatus::ElementNotInteractable
                | ErrorStatus::ElementClickIntercepted
                | ErrorStatus::InvalidElementState
        ),
        _ => false,
    }
}
