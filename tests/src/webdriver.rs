//! A small W3C WebDriver client over reqwest, enough to drive the desktop app through
//! tauri-driver: sessions, elements by CSS selector, clicks, typing, text, screenshots.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
}

/// The W3C element reference key.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The reference in an element object: the W3C key, or the older `ELEMENT` key some drivers use.
fn element_id(v: &Value) -> Option<String> {
    v.get(ELEMENT)
        .or_else(|| v.get("ELEMENT"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl WebDriver {
    /// Starts a session that launches `application` (a Tauri binary) through tauri-driver.
    pub async fn launch(driver_url: &str, application: &str) -> anyhow::Result<WebDriver> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application}
        }}});
        let res: Value = http
            .post(format!("{driver_url}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = res["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no session: {res}"))?
            .to_owned();
        Ok(WebDriver {
            http,
            base: driver_url.to_owned(),
            session,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await?.json().await?;
        if let Some(err) = res["value"]["error"].as_str() {
            anyhow::bail!("webdriver {path}: {err}: {}", res["value"]["message"]);
        }
        Ok(res["value"].clone())
    }

    /// The first element matching `css`, waiting up to `wait` for it to appear.
    pub async fn find(&self, css: &str, wait: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found.map(|v| (element_id(&v), v)) {
                Ok((Some(id), _)) => return Ok(id),
                Ok((None, v)) if tokio::time::Instant::now() >= deadline => {
                    anyhow::bail!("{css}: no element reference in {v}")
                }
                Ok((None, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    anyhow::bail!("{css} not found: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn click(&self, element: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// Clicks through the DOM (`element.click()`), for elements WebDriver calls not interactable
    /// (table rows in WebKit).
    pub async fn js_click(&self, element: &str) -> anyhow::Result<()> {
        self.execute("arguments[0].click();", vec![json!({ ELEMENT: element })])
            .await?;
        Ok(())
    }

    pub async fn clear(&self, element: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    pub async fn type_text(&self, element: &str, text: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await?;
        Ok(())
    }

    /// The current `value` property of a form field (what the user typed, not the attribute).
    pub async fn value(&self, element: &str) -> anyhow::Result<Option<String>> {
        let v = self
            .execute(
                "return arguments[0].value;",
                vec![json!({ ELEMENT: element })],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    pub async fn text(&self, element: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    pub async fn attribute(&self, element: &str, name: &str) -> anyhow::Result<Option<String>> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/attribute/{name}"),
                None,
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Presses and releases `key` (a WebDriver key code, e.g. "\u{E004}" for Tab) through the
    /// actions API, on whatever has focus.
    pub async fn press_key(&self, key: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
            ),
        )
        .await?;
        Ok(())
    }

    /// Resizes the window (its outer size; without a window manager, the page's viewport).
    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await?;
        Ok(())
    }

    /// Runs a script in the page and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    pub async fn quit(self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await?;
        Ok(())
    }
}
