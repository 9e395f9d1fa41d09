//! The real desktop app in a real window, driven by WebDriver (tauri-driver + WebKitWebDriver)
//! against a real server, one behaviour per test so one failure does not hide the rest. Each test
//! starts its own server and database and its own app on an emptied data directory, and ends by
//! quitting the app and scanning its files for tokens. Screenshots of each screen, taken once its
//! data has loaded, land in artifacts/desktop/.
//!
//! Needs a display, a session bus with an unlocked keyring and tauri-driver: run through
//! `scripts/desktop-e2e.sh` (part of `scripts/test.sh`), which sets all of that up. The tests
//! share the app's data directory and the driver, so they run one at a time (the `desktop` test
//! group in .config/nextest.toml).

mod support;

use std::time::Duration;

use keyward_core::KeyStatus;
use keyward_core::api::{
    AlertFilter, AlertStatus, AlertsQuery, CreateKeyRequest, RevokeKeyRequest,
};
use keyward_e2e::{PASSWORD, TestApp, TestServer, eventually};
use secrecy::SecretString;

use support::*;

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn signing_in_refuses_a_wrong_password_then_opens_the_keys_screen() {
    let desk = open().await;
    let result = async {
        let wd = &desk.wd;
        let base = &desk.app.server.base_url;
        sign_in(wd, base, "not the password").await?;
        let said = wait_text(wd, "error-banner", "a refusal", |t| !t.is_empty()).await?;
        anyhow::ensure!(
            said.contains("The email or the password is wrong."),
            "refusal: {said:?}"
        );
        anyhow::ensure!(
            wd.find_all(&css("new-key")).await?.is_empty(),
            "signed in with a wrong password"
        );
        fill(wd, "login-password", PASSWORD).await?;
        wd.screenshot(&shot("01-login.png")).await?;
        click(wd, "login-submit").await?;
        wd.find(&css("new-key"), WAIT).await?;
        wd.find(&css("keys-empty"), WAIT).await?;
        wait_text(wd, "status-online", "Online", |t| t.contains("Online")).await?;
        queued(wd, 0).await?;
        wd.screenshot(&shot("02-keys-empty.png")).await?;
        Ok(vec![])
    }
    .await;
    desk.finish("sign-in", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn a_created_key_shows_its_token_once_copies_it_and_works() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        click(wd, "new-key").await?;
        fill(wd, "create-name", "Deploy bot").await?;
        fill(wd, "create-scopes", "achievements:read badges:*").await?;
        wd.screenshot(&shot("03-create.png")).await?;
        click(wd, "create-submit").await?;
        let token = wd.text(&wd.find(&css("issued-token"), WAIT).await?).await?;
        anyhow::ensure!(token.starts_with("kw_live_"), "token shown: {token:?}");
        wd.screenshot(&shot("04-token-once.png")).await?;

        // Copy: to the clipboard, or (without clipboard access) the token selected for Ctrl+C.
        click(wd, "copy-token").await?;
        let copied = eventually(WAIT, || async {
            text_of(wd, "copy-token").await.contains("Copied")
        })
        .await;
        if copied {
            // What the clipboard holds is what Ctrl+V pastes into a field of the app.
            println!("copied to the clipboard");
            click(wd, "token-done").await?;
            let search = wd.find(&css("search"), WAIT).await?;
            wd.clear(&search).await?;
            wd.type_text(&search, "\u{E009}v\u{E000}").await?;
            let pasted = wd.value(&search).await?;
            anyhow::ensure!(
                pasted.as_deref() == Some(token.as_str()),
                "pasted {pasted:?}, copied {token:?}"
            );
            wd.clear(&search).await?;
        } else {
            println!("no clipboard access: the token is selected for Ctrl+C");
            let selected = wd
                .execute("return String(window.getSelection());", vec![])
                .await?;
            anyhow::ensure!(
                selected.as_str().map(str::trim) == Some(token.as_str()),
                "copy-token says {:?}; selected {selected}",
                text_of(wd, "copy-token").await
            );
            click(wd, "token-done").await?;
        }
        anyhow::ensure!(
            wd.find_all(&css("issued-token")).await?.is_empty(),
            "the token is still shown after closing"
        );

        let row = wd.text(&row_named(wd, "Deploy bot").await?).await?;
        anyhow::ensure!(!row.contains(&token), "the list shows the token: {row:?}");
        let works = eventually(WAIT, || async {
            desk.app.anon.whoami(&token).await.is_ok()
        })
        .await;
        anyhow::ensure!(works, "the key created in the app works against the server");
        let key = key_on_server(&desk.app.owner, "Deploy bot").await?;
        anyhow::ensure!(
            key.scopes.to_strings() == ["achievements:read", "badges:*"],
            "scopes on the server: {:?}",
            key.scopes
        );
        queued(wd, 0).await?;
        wd.screenshot(&shot("05-keys-list.png")).await?;
        Ok(vec![token])
    }
    .await;
    desk.finish("create", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn revoking_a_key_from_its_detail_screen_refuses_its_token() {
    let t = std::time::Instant::now();
    let desk = signed_in().await;
    note(t, "signed in");
    let result = async {
        let wd = &desk.wd;
        let (_, token) = server_key(
            &desk.app.owner,
            CreateKeyRequest {
                name: "Deploy bot".into(),
                ..Default::default()
            },
        )
        .await?;
        desk.app.anon.whoami(&token).await?;
        open_key(wd, "Deploy bot").await?;
        note(t, "detail open");
        // The egui_plot chart (wasm) mounts in its canvas.
        wd.find("[data-testid='usage-chart'][data-chart='ready']", WAIT)
            .await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        note(t, "chart ready");
        wd.screenshot(&shot("06-key-detail.png")).await?;
        click(wd, "revoke-open").await?;
        fill(wd, "revoke-grace", "0").await?;
        fill(wd, "revoke-reason", "end-to-end test").await?;
        wd.screenshot(&shot("07-revoke.png")).await?;
        click(wd, "revoke-submit").await?;
        note(t, "revoke sent");
        anyhow::ensure!(
            refused_as_revoked(&desk.app.anon, &token).await,
            "revocation reached the server"
        );
        note(t, "refused");
        wd.find("[data-testid='key-detail'][data-status='revoked']", WAIT)
            .await?;
        let key = key_on_server(&desk.app.owner, "Deploy bot").await?;
        anyhow::ensure!(key.status == KeyStatus::Revoked, "{key:?}");
        Ok(vec![token])
    }
    .await;
    desk.finish("revoke", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn limits_set_in_the_app_are_enforced_and_last_use_is_the_servers() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        let (owner, anon) = (&desk.app.owner, &desk.app.anon);
        // A key with a rule of its own, made in the app: 2 calls per minute.
        click(wd, "new-key").await?;
        fill(wd, "create-name", "Rate limited").await?;
        click(wd, "create-rule-add").await?;
        fill(wd, "create-rule-limit", "2").await?;
        fill(wd, "create-rule-window", "60").await?;
        fill(wd, "create-quota-daily", "1,000").await?;
        wd.screenshot(&shot("05a-create-limits.png")).await?;
        click(wd, "create-submit").await?;
        let token = wd.text(&wd.find(&css("issued-token"), WAIT).await?).await?;
        click(wd, "token-done").await?;
        let on_server = eventually(WAIT, || async {
            key_on_server(owner, "Rate limited").await.is_ok()
        })
        .await;
        anyhow::ensure!(on_server, "the new key reached the server");

        // One call, then the server's last use is what the app shows once synced.
        anon.whoami(&token).await?;
        let mut used = None;
        for _ in 0..100 {
            used = key_on_server(owner, "Rate limited").await?.last_used_at;
            if used.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let used = used.ok_or_else(|| anyhow::anyhow!("the server recorded no use"))?;
        sync_now(wd).await?;
        open_key(wd, "Rate limited").await?;
        let minute = used.format("%Y-%m-%d %H:%M UTC").to_string();
        let shown = wait_text(wd, "detail-last-used", "the server's last use", |t| {
            t.contains(&minute)
        })
        .await?;
        anyhow::ensure!(!shown.contains("never"), "{shown:?}");
        let rules = wait_text(wd, "limits-rules", "the key's rule", |t| !t.is_empty()).await?;
        anyhow::ensure!(
            rules.contains("minute"),
            "the rule made in the app: {rules:?}"
        );
        let forecast = wait_text(wd, "limits-forecast", "the quota forecast", |t| {
            t.contains("Daily quota")
        })
        .await?;
        anyhow::ensure!(
            forecast.contains("lasts the day at the rate so far")
                && forecast.contains("confidence"),
            "1 of 1,000: {forecast:?}"
        );

        // The rule is the server's: the third call in the minute is refused.
        anon.whoami(&token).await?;
        let third = anon.whoami(&token).await;
        anyhow::ensure!(
            third.as_ref().err().and_then(|e| e.code()) == Some("rate_limited"),
            "the third call within a minute: {third:?}"
        );
        wd.screenshot(&shot("05b-limits-and-last-use.png")).await?;
        Ok(vec![token])
    }
    .await;
    desk.finish("limits", result).await;
}

/// What of the content lies outside the window, or in a table that has to scroll sideways.
const OUTSIDE: &str = r#"
    const w = document.documentElement.clientWidth;
    const out = [];
    for (const el of document.querySelectorAll('.content *')) {
        const r = el.getBoundingClientRect();
        if (r.width < 2 || r.height < 2) continue;
        if (r.right > w + 1) out.push((el.getAttribute('data-testid') || el.tagName + '.' + el.className) + ' ends at ' + Math.round(r.right) + ' of ' + w);
    }
    for (const el of document.querySelectorAll('.table-wrap')) {
        if (el.scrollWidth > el.clientWidth + 1) out.push('a table scrolls sideways: ' + el.scrollWidth + ' > ' + el.clientWidth);
    }
    return out.slice(0, 12);
"#;

async fn outside_window(wd: &keyward_e2e::webdriver::WebDriver) -> anyhow::Result<Vec<String>> {
    let v = wd.execute(OUTSIDE, vec![]).await?;
    Ok(serde_json::from_value(v)?)
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn the_layout_holds_in_a_small_window_and_the_keyboard_leaves_the_chart() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        let (owner, anon) = (&desk.app.owner, &desk.app.anon);
        let mut tokens = Vec::new();
        for name in [
            "Payments reconciliation worker (production)",
            "Badge sync",
            "CI deploy",
        ] {
            let (_, token) = server_key(
                owner,
                CreateKeyRequest {
                    name: name.into(),
                    scopes: Some(vec![
                        "achievements:read".into(),
                        "badges:write".into(),
                        "users:read".into(),
                    ]),
                    expires_at: Some(chrono::Utc::now() + chrono::Duration::days(90)),
                    ..Default::default()
                },
            )
            .await?;
            anon.whoami(&token).await?;
            tokens.push(token);
        }
        let badge = key_on_server(owner, "Badge sync").await?;
        desk.app.seed_alert(&badge).await;
        sync_now(wd).await?;
        wd.set_window_size(1024, 700).await?;
        let size = wd
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        println!("window: {size}");

        for (nav, ready, name) in [
            ("nav-keys", "key-row", "keys"),
            ("nav-alerts", "alert-row", "alerts"),
            ("nav-dashboard", "dashboard", "dashboard"),
            ("nav-audit", "audit-row", "audit"),
            ("nav-settings", "sync-now", "settings"),
        ] {
            click(wd, nav).await?;
            wd.find(&css(ready), WAIT).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            wd.screenshot(&shot(&format!("20-small-{name}.png"))).await?;
            let outside = outside_window(wd).await?;
            anyhow::ensure!(outside.is_empty(), "{name} at 1024x700: {outside:?}");
        }

        // The key's page scrolls inside the content; the sidebar keeps the window's height.
        open_key(wd, "Badge sync").await?;
        wd.find("[data-testid='usage-chart'][data-chart='ready']", WAIT)
            .await?;
        let outside = outside_window(wd).await?;
        anyhow::ensure!(outside.is_empty(), "key detail at 1024x700: {outside:?}");
        let scrolled = wd
            .execute(
                "const c = document.querySelector('.content'); c.scrollTop = c.scrollHeight; \
                 const s = document.querySelector('.sidebar').getBoundingClientRect(); \
                 return [c.scrollTop > 0, document.scrollingElement.scrollTop, Math.round(s.top), \
                         Math.round(s.bottom), window.innerHeight];",
                vec![],
            )
            .await?;
        let v: (bool, f64, f64, f64, f64) = serde_json::from_value(scrolled.clone())?;
        anyhow::ensure!(
            v.0 && v.1 == 0.0 && v.2 == 0.0 && v.3 + 40.0 >= v.4,
            "the content scrolls alone and the sidebar spans the window: {scrolled}"
        );
        wd.screenshot(&shot("21-small-key-detail.png")).await?;

        // Tab leaves the chart (egui would keep it).
        let canvas = wd.find(&css("usage-chart"), WAIT).await?;
        wd.execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![serde_json::json!({ keyward_e2e::webdriver::ELEMENT: canvas })],
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        wd.screenshot(&shot("22-small-usage-chart.png")).await?;
        // egui cancels a Tab that reaches its canvas (it moves focus inside itself); the app
        // keeps Tab from the canvas's listeners, so the browser's focus move happens. A probe
        // listener on the canvas stands for egui's: it must not hear the Tab, and nothing may
        // cancel it.
        let tab = wd
            .execute(
                "const c = arguments[0]; c.focus(); let heard = false; \
                 const probe = () => { heard = true; }; c.addEventListener('keydown', probe); \
                 const e = new KeyboardEvent('keydown', {key: 'Tab', code: 'Tab', bubbles: true, cancelable: true}); \
                 c.dispatchEvent(e); c.removeEventListener('keydown', probe); \
                 return [heard, e.defaultPrevented];",
                vec![serde_json::json!({ keyward_e2e::webdriver::ELEMENT: canvas })],
            )
            .await?;
        anyhow::ensure!(
            tab == serde_json::json!([false, false]),
            "Tab reaches the chart's listeners or is cancelled: {tab}"
        );
        // And a Tab pressed on the focused chart (a real key press, through XTEST) moves focus
        // on. Under Xvfb without a window manager the key does not always reach the web view,
        // so this part is reported rather than asserted; the check above is what fails if the
        // chart traps the keyboard again.
        let window = xdotool(&["search", "--onlyvisible", "--name", "Keyward"]).await?;
        if let Some(w) = window.lines().next() {
            xdotool(&["windowfocus", "--sync", w]).await?;
        }
        wd.execute(
            "arguments[0].focus();",
            vec![serde_json::json!({ keyward_e2e::webdriver::ELEMENT: canvas })],
        )
        .await?;
        xdotool(&["key", "Tab"]).await?;
        let after_xtest = wd
            .execute(
                "const a = document.activeElement; return a ? (a.id || a.getAttribute('data-testid') || a.tagName) : null;",
                vec![],
            )
            .await?;
        println!("after a real Tab (XTEST) on the chart, focus is on {after_xtest}");
        wd.execute(
            "arguments[0].focus();",
            vec![serde_json::json!({ keyward_e2e::webdriver::ELEMENT: canvas })],
        )
        .await?;
        wd.press_key("\u{E004}").await?;
        // Neither the canvas nor the hidden text field egui puts after it.
        let left = wd
            .execute(
                "const c = document.getElementById('usage-chart'); const a = document.activeElement; \
                 return [a === c || a === c.nextElementSibling, a ? (a.id || a.getAttribute('data-testid') || a.tagName) : null];",
                vec![],
            )
            .await?;
        println!("after a WebDriver Tab (actions) on the chart, focus is on {left}");
        anyhow::ensure!(
            left.get(0) == Some(&serde_json::json!(false)),
            "Tab left focus in the chart: {left}"
        );
        Ok(tokens)
    }
    .await;
    desk.finish("layout", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn offline_changes_wait_in_the_outbox_and_sync_on_reconnect() {
    let Desk { app, wd, addr } = signed_in().await;
    let TestApp {
        db,
        server,
        owner,
        anon,
    } = app;
    let result = async {
        let wd = &wd;
        let (edited, edited_token) = server_key(
            &owner,
            CreateKeyRequest {
                name: "Edit me".into(),
                ..Default::default()
            },
        )
        .await?;
        let (_, revoked_token) = server_key(
            &owner,
            CreateKeyRequest {
                name: "Revoke me".into(),
                ..Default::default()
            },
        )
        .await?;
        row_named(wd, "Edit me").await?;
        row_named(wd, "Revoke me").await?;

        go_offline(wd, server).await?;
        // A key created, one renamed and one revoked, all while the server is away.
        click(wd, "new-key").await?;
        fill(wd, "create-name", "Made offline").await?;
        click(wd, "create-submit").await?;
        let offline_token = wd.text(&wd.find(&css("issued-token"), WAIT).await?).await?;
        click(wd, "token-done").await?;
        row_named(wd, "Made offline").await?;
        open_key(wd, "Made offline").await?;
        let state = wait_text(wd, "key-pending-state", "not active", |t| !t.is_empty()).await?;
        anyhow::ensure!(
            state.contains(
                "Not active until synced — the server refuses this key until this device syncs."
            ),
            "a key made offline says it does not work yet: {state:?}"
        );
        let badge = text_of(wd, "status-badge").await;
        anyhow::ensure!(badge == "not active until synced", "badge: {badge:?}");
        open_key(wd, "Edit me").await?;
        click(wd, "edit-open").await?;
        fill(wd, "edit-name", "Edited offline").await?;
        click(wd, "edit-submit").await?;
        open_key(wd, "Revoke me").await?;
        revoke_open_key(wd, "revoked offline").await?;
        wd.find("[data-testid='key-detail'][data-status='revoked']", WAIT)
            .await?;
        // Revoked here, not on the server: the key still works, and the app says so.
        let state = wait_text(wd, "key-pending-state", "revocation queued", |t| {
            !t.is_empty()
        })
        .await?;
        anyhow::ensure!(
            state.contains("Revocation queued — the key still works until this device syncs."),
            "state: {state:?}"
        );
        let badge = text_of(wd, "status-badge").await;
        anyhow::ensure!(badge == "revocation queued", "badge: {badge:?}");
        let when = text_of(wd, "detail-revocation").await;
        anyhow::ensure!(
            when.contains("the server sets the time when it syncs"),
            "no revocation time is made up offline: {when:?}"
        );
        let banner = wait_text(wd, "revocations-banner", "the banner", |t| !t.is_empty()).await?;
        anyhow::ensure!(
            banner
                .contains("1 revocation is queued — that key still works until this device syncs."),
            "banner: {banner:?}"
        );
        wd.screenshot(&shot("08a-revocation-queued.png")).await?;
        queued(wd, 3).await?;
        click(wd, "nav-keys").await?;
        row_named(wd, "Edited offline").await?;
        let pending = wd.find_all(&css("key-pending")).await?.len();
        anyhow::ensure!(pending == 3, "{pending} keys marked as waiting to sync");
        wd.screenshot(&shot("08-offline-queued.png")).await?;

        let server = back_online(wd, &db, &addr).await?;
        let made = key_on_server(&owner, "Made offline").await?;
        anyhow::ensure!(made.status == KeyStatus::Active, "{made:?}");
        anon.whoami(&offline_token).await?;
        let renamed = owner.get_key(edited.id).await?;
        anyhow::ensure!(renamed.name == "Edited offline", "{renamed:?}");
        anon.whoami(&edited_token).await?;
        anyhow::ensure!(
            refused_as_revoked(&anon, &revoked_token).await,
            "the offline revocation reached the server"
        );
        let no_pending = eventually(WAIT, || async {
            wd.find_all(&css("key-pending"))
                .await
                .is_ok_and(|m| m.is_empty())
        })
        .await;
        anyhow::ensure!(no_pending, "keys still marked as waiting to sync");
        let banner_gone = eventually(WAIT, || async {
            wd.find_all(&css("revocations-banner"))
                .await
                .is_ok_and(|m| m.is_empty())
        })
        .await;
        anyhow::ensure!(banner_gone, "the queued-revocation banner stays after sync");
        // The revocation time shown is the server's.
        let revoked = key_on_server(&owner, "Revoke me").await?;
        open_key(wd, "Revoke me").await?;
        let at = wd.find(&css("detail-revocation"), WAIT).await?;
        let shown = wd.attribute(&at, "data-revoked-at").await?;
        anyhow::ensure!(
            shown
                .as_deref()
                .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok())
                == revoked.revoked_at,
            "the revocation time shown {shown:?} is the server's {:?}",
            revoked.revoked_at
        );
        wd.screenshot(&shot("09-back-online.png")).await?;
        server.stop().await;
        Ok(vec![offline_token, edited_token, revoked_token])
    }
    .await;
    finish(wd, "offline", result).await;
    drop(db);
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn an_offline_edit_the_server_refuses_shows_a_rejection() {
    let Desk { app, wd, addr } = signed_in().await;
    let TestApp {
        db,
        server,
        owner,
        anon: _,
    } = app;
    let result = async {
        let wd = &wd;
        let (leaked, token) = server_key(
            &owner,
            CreateKeyRequest {
                name: "Leaked".into(),
                ..Default::default()
            },
        )
        .await?;
        row_named(wd, "Leaked").await?;
        go_offline(wd, server).await?;
        open_key(wd, "Leaked").await?;
        click(wd, "edit-open").await?;
        fill(wd, "edit-name", "Renamed offline").await?;
        click(wd, "edit-submit").await?;
        queued(wd, 1).await?;

        // Meanwhile another admin, through a server the app does not know, revokes the key.
        let other = TestServer::start(&db, |_| {}).await;
        let (admin, _) = other
            .client()
            .login("owner@acme.test", &SecretString::from(PASSWORD))
            .await?;
        admin
            .revoke_key(
                leaked.id,
                &RevokeKeyRequest {
                    grace_seconds: Some(0),
                    reason: Some("leaked".into()),
                },
            )
            .await?;
        other.stop().await;

        let server = back_online(wd, &db, &addr).await?;
        // The server's version wins and the refusal shows on the key, in the list and on its
        // detail screen.
        click(wd, "nav-keys").await?;
        let row = row_named(wd, "Leaked").await?;
        let marked = eventually(WAIT, || async {
            wd.find_all(&css("key-rejected"))
                .await
                .is_ok_and(|m| m.len() == 1)
        })
        .await;
        anyhow::ensure!(
            marked,
            "the key is marked as refused: {:?}",
            wd.text(&row).await
        );
        open_key(wd, "Leaked").await?;
        wd.find("[data-testid='key-detail'][data-status='revoked']", WAIT)
            .await?;
        let banner = wait_text(wd, "key-error", "the refusal", |t| !t.is_empty()).await?;
        anyhow::ensure!(
            banner.contains("The server refused a change to this key")
                && banner.contains("A revoked key cannot be changed.")
                && !banner.contains("key_revoked"),
            "banner, in words and without a raw code: {banner:?}"
        );
        wd.screenshot(&shot("08b-rejected.png")).await?;
        // The refused edit is kept with what it was and why, until retried or discarded.
        let all = wait_text(wd, "rejected-banner", "the refused-changes banner", |t| {
            !t.is_empty()
        })
        .await?;
        anyhow::ensure!(all.contains("The server refused 1 change"), "{all:?}");
        click(wd, "nav-settings").await?;
        let listed =
            wait_text(wd, "rejected-change", "the refused edit", |t| !t.is_empty()).await?;
        anyhow::ensure!(
            listed.contains("Edit")
                && listed.contains("Renamed offline")
                && listed.contains("Leaked")
                && listed.contains("A revoked key cannot be changed."),
            "listed: {listed:?}"
        );
        wd.screenshot(&shot("08c-refused-changes.png")).await?;
        click(wd, "rejected-discard").await?;
        wait_text(wd, "rejected-empty", "an empty list", |t| !t.is_empty()).await?;
        let none = eventually(WAIT, || async {
            wd.find_all(&css("rejected-banner"))
                .await
                .is_ok_and(|m| m.is_empty())
        })
        .await;
        anyhow::ensure!(none, "the refused-changes banner stays after discarding");
        let key = owner.get_key(leaked.id).await?;
        anyhow::ensure!(
            key.name == "Leaked" && key.status == KeyStatus::Revoked,
            "{key:?}"
        );
        server.stop().await;
        Ok(vec![token])
    }
    .await;
    finish(wd, "rejection", result).await;
    drop(db);
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn the_dashboard_shows_usage_alerts_and_keys_needing_attention() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        let (busy, token) = server_key(
            &desk.app.owner,
            CreateKeyRequest {
                name: "Busy key".into(),
                ..Default::default()
            },
        )
        .await?;
        desk.app.anon.whoami(&token).await?;
        desk.app.anon.whoami(&token).await?;
        let (_, expiring_token) = server_key(
            &desk.app.owner,
            CreateKeyRequest {
                name: "Expiring soon".into(),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::days(2)),
                ..Default::default()
            },
        )
        .await?;
        desk.app.seed_alert(&busy).await;

        // Each round: "Sync now" (a sync round and the analytics pull), then the Dashboard,
        // which reads the replica when it opens, until it counts both calls.
        let loaded = eventually(Duration::from_secs(45), || async {
            let round = async {
                sync_now(wd).await?;
                click(wd, "nav-dashboard").await?;
                wd.find("[data-testid='dashboard'][aria-busy='false']", WAIT)
                    .await?;
                anyhow::Ok(text_of(wd, "total-allowed").await.trim() == "2")
            };
            round.await.unwrap_or(false)
        })
        .await;
        anyhow::ensure!(
            loaded,
            "the dashboard counts 2 allowed calls: {:?}",
            text_of(wd, "dashboard-totals").await
        );
        let requests = text_of(wd, "total-requests").await;
        anyhow::ensure!(requests.trim() == "2", "requests: {requests:?}");
        let state = text_of(wd, "dashboard-state").await;
        anyhow::ensure!(state.contains("synced"), "state: {state:?}");
        let top = text_of(wd, "top-volume").await;
        anyhow::ensure!(top.contains("Busy key"), "top keys by volume: {top:?}");
        let alerts = text_of(wd, "dashboard-alerts").await;
        anyhow::ensure!(
            alerts.contains("Busy key") && alerts.contains("seeded test") && alerts.contains("420"),
            "dashboard alerts: {alerts:?}"
        );
        let attention = texts(wd, &css("attention-item")).await?;
        anyhow::ensure!(
            attention.iter().any(|a| a.contains("Expiring soon")),
            "attention: {attention:?}"
        );
        anyhow::ensure!(
            wd.find_all(&css("dashboard-error")).await?.is_empty(),
            "the dashboard shows an error: {:?}",
            text_of(wd, "dashboard-error").await
        );
        wd.screenshot(&shot("12-dashboard.png")).await?;
        Ok(vec![token, expiring_token])
    }
    .await;
    desk.finish("dashboard", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn the_audit_log_lists_changes_and_opens_their_key() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        click(wd, "new-key").await?;
        fill(wd, "create-name", "Audited").await?;
        click(wd, "create-submit").await?;
        let token = wd.text(&wd.find(&css("issued-token"), WAIT).await?).await?;
        click(wd, "token-done").await?;
        row_named(wd, "Audited").await?;
        queued(wd, 0).await?;
        let key = key_on_server(&desk.app.owner, "Audited").await?;

        // The log is read from the replica: refreshed until the server's entry has synced.
        click(wd, "nav-audit").await?;
        let listed = eventually(Duration::from_secs(30), || async {
            let _ = click(wd, "audit-refresh").await;
            texts(wd, &css("audit-row")).await.is_ok_and(|rows| {
                rows.iter()
                    .any(|r| r.contains("Created key Audited") && r.contains("owner@acme.test"))
            })
        })
        .await;
        anyhow::ensure!(
            listed,
            "the audit log lists the key's creation: {:?}",
            texts(wd, &css("audit-row")).await
        );
        let rows = texts(wd, &css("audit-row")).await?;
        anyhow::ensure!(
            !rows.iter().any(|r| r.contains(&key.id.to_string()[..8])),
            "names, not ids: {rows:?}"
        );
        wd.screenshot(&shot("10-audit.png")).await?;
        let link = wd
            .find(
                &format!("[data-testid='audit-row'] a[title='key {}']", key.id),
                WAIT,
            )
            .await?;
        wd.js_click(&link).await?;
        wd.find(
            &format!("[data-testid='key-detail'][data-key-id='{}']", key.id),
            WAIT,
        )
        .await?;
        Ok(vec![token])
    }
    .await;
    desk.finish("audit", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn settings_show_the_account_the_sync_state_and_alert_sensitivity() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        sync_now(wd).await?;
        let server = text_of(wd, "settings-server").await;
        anyhow::ensure!(
            server.trim_end_matches('/') == desk.app.server.base_url,
            "server: {server:?}"
        );
        let email = text_of(wd, "settings-email").await;
        anyhow::ensure!(email == "owner@acme.test", "email: {email:?}");
        let role = text_of(wd, "settings-role").await;
        anyhow::ensure!(role.to_lowercase().contains("owner"), "role: {role:?}");
        let org = text_of(wd, "settings-org").await;
        anyhow::ensure!(
            !org.is_empty() && uuid::Uuid::parse_str(org.trim()).is_err(),
            "the organisation by its name: {org:?}"
        );
        wait_text(wd, "settings-online", "Online", |t| t.starts_with("Online")).await?;
        let queued = text_of(wd, "settings-queued").await;
        anyhow::ensure!(queued == "0", "queued: {queued:?}");
        let last_sync = text_of(wd, "settings-last-sync").await;
        anyhow::ensure!(
            !last_sync.is_empty() && !last_sync.contains("never"),
            "last sync: {last_sync:?}"
        );
        let error = text_of(wd, "settings-last-error").await;
        anyhow::ensure!(error == "none", "last error: {error:?}");
        // Alert sensitivity comes from the server: the defaults, loaded into the form.
        wd.find("[data-testid='alert-settings'][aria-busy='false']", WAIT)
            .await?;
        let z = wd.find(&css("threshold-z_score"), WAIT).await?;
        let value = wd.value(&z).await?;
        anyhow::ensure!(value.as_deref() == Some("4"), "z-score: {value:?}");
        let min = wd
            .value(&wd.find(&css("threshold-min_volume"), WAIT).await?)
            .await?;
        anyhow::ensure!(min.as_deref() == Some("30"), "minimum volume: {min:?}");
        wd.find(&css("sign-out"), WAIT).await?;
        wd.find(&css("password-save"), WAIT).await?;
        wd.screenshot(&shot("11-settings.png")).await?;
        Ok(vec![])
    }
    .await;
    desk.finish("settings", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn a_restarted_app_restores_its_session_from_the_keychain() {
    let t = std::time::Instant::now();
    let desk = signed_in().await;
    note(t, "signed in");
    let before = async {
        server_key(
            &desk.app.owner,
            CreateKeyRequest {
                name: "Before restart".into(),
                ..Default::default()
            },
        )
        .await?;
        row_named(&desk.wd, "Before restart").await?;
        Ok(())
    }
    .await;
    let Desk { app, wd, addr: _ } = desk;
    if let Err(e) = before {
        finish(wd, "restart-before", Err(e)).await;
        unreachable!();
    }
    // Quitting ends the app's process; a new one starts from the data directory and keychain.
    wd.quit().await.expect("quit the app");
    note(t, "quit");
    let wd = launch().await;
    note(t, "relaunched");
    let result = async {
        let wd = &wd;
        wd.find(&css("new-key"), WAIT).await?;
        anyhow::ensure!(
            wd.find_all(&css("login-password")).await?.is_empty(),
            "the restarted app asks for the password"
        );
        note(t, "keys screen");
        row_named(wd, "Before restart").await?;
        // The restored session works against the server: a key made there now shows up.
        let (_, token) = server_key(
            &app.owner,
            CreateKeyRequest {
                name: "After restart".into(),
                ..Default::default()
            },
        )
        .await?;
        note(t, "made on the server");
        row_named(wd, "After restart").await?;
        note(t, "synced");
        wait_text(wd, "status-online", "Online", |t| t.contains("Online")).await?;
        click(wd, "nav-settings").await?;
        let email = text_of(wd, "settings-email").await;
        anyhow::ensure!(email == "owner@acme.test", "email: {email:?}");
        click(wd, "nav-keys").await?;
        row_named(wd, "After restart").await?;
        wd.screenshot(&shot("13-restored.png")).await?;
        Ok(vec![token])
    }
    .await;
    finish(wd, "restart", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn an_alert_is_listed_notified_and_acknowledged() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        let app = &desk.app;
        // One alert seeded in the database (of a kind no detector touches: real ones need hours
        // of baseline) is listed on the Alerts screen once the app has pulled analytics, which
        // "Sync now" does at once; it is acknowledged in the UI and so on the server.
        let (key, _) = server_key(
            &app.owner,
            CreateKeyRequest {
                name: "Deploy bot".into(),
                ..Default::default()
            },
        )
        .await?;
        let alert_id = app.seed_alert(&key).await;
        let row = format!("[data-testid='alert-row'][data-alert-id='{alert_id}']");
        let listed = eventually(Duration::from_secs(45), || async {
            let round = async {
                sync_now(wd).await?;
                click(wd, "nav-alerts").await?;
                wd.find("[data-testid='alerts-screen'][aria-busy='false']", WAIT)
                    .await?;
                wd.find(&row, Duration::from_secs(1)).await
            };
            round.await.is_ok()
        })
        .await;
        anyhow::ensure!(listed, "the seeded alert is listed on the Alerts screen");
        let text = wd.text(&wd.find(&row, WAIT).await?).await?;
        anyhow::ensure!(
            text.contains("Deploy bot") && text.contains("Seeded test") && text.contains("open"),
            "alert row: {text:?}"
        );
        wd.screenshot(&shot("07b-alerts.png")).await?;

        // The same sync showed it as a native notification: dunst, the session's notification
        // daemon, logs each one it shows (application, summary, body) to this file.
        let log = std::env::var("KEYWARD_NOTIFICATIONS_LOG").map_err(|_| {
            anyhow::anyhow!("KEYWARD_NOTIFICATIONS_LOG unset: run through scripts/desktop-e2e.sh")
        })?;
        let wanted = "Alert: seeded test on Deploy bot";
        let shown = eventually(WAIT, || async {
            std::fs::read_to_string(&log).is_ok_and(|all| {
                all.lines()
                    .filter(|l| l.split('\t').nth(1) == Some(wanted))
                    .count()
                    == 1
            })
        })
        .await;
        anyhow::ensure!(
            shown,
            "one notification {wanted:?} in {log}: {:?}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );

        let ack = wd
            .find(&format!("{row} [data-testid='alert-ack']"), WAIT)
            .await?;
        wd.click(&ack).await?;
        // The open list drops it once the server has answered.
        let gone = eventually(WAIT, || async {
            wd.find_all(&row).await.is_ok_and(|rows| rows.is_empty())
        })
        .await;
        anyhow::ensure!(
            gone,
            "the acknowledged alert left the open list; ack error: {:?}",
            text_of(wd, "ack-error").await
        );
        let acked = eventually(WAIT, || async {
            app.owner
                .alerts(&AlertsQuery {
                    status: Some(AlertFilter::All),
                })
                .await
                .is_ok_and(|list| {
                    list.iter().any(|a| {
                        a.id == alert_id && a.status == AlertStatus::Acked && a.acked_at.is_some()
                    })
                })
        })
        .await;
        anyhow::ensure!(acked, "the alert is acknowledged on the server");
        click(wd, "alerts-filter-acked").await?;
        let text = wd.text(&wd.find(&row, WAIT).await?).await?;
        anyhow::ensure!(
            text.contains("acknowledged") && text.contains("by owner@acme.test"),
            "acked row, with who acknowledged it: {text:?}"
        );
        wd.screenshot(&shot("07c-alert-acked.png")).await?;
        Ok(vec![])
    }
    .await;
    desk.finish("alerts", result).await;
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn a_usage_report_saves_through_the_native_save_dialog() {
    let desk = signed_in().await;
    let result = async {
        let wd = &desk.wd;
        let (_, token) = server_key(
            &desk.app.owner,
            CreateKeyRequest {
                name: "Reported".into(),
                ..Default::default()
            },
        )
        .await?;
        desk.app.anon.whoami(&token).await?;
        row_named(wd, "Reported").await?;
        // "Save report…" opens the real GTK save dialog (outside the web view, so driven with
        // xdotool: the dialog's name field takes a whole path); the report streams into that
        // file and the screen says how many rows it wrote.
        click(wd, "nav-reports").await?;
        wd.find(&css("reports-screen"), WAIT).await?;
        click(wd, "report-format-csv").await?;
        click(wd, "report-save").await?;
        let dialog = xdotool(&[
            "search",
            "--sync",
            "--onlyvisible",
            "--name",
            "Save usage report",
        ])
        .await?;
        let dialog = dialog
            .lines()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no save dialog window"))?
            .to_owned();
        let dir = tempfile_dir("report")?;
        let path = dir.join("usage.csv");
        let typed = path.to_string_lossy().into_owned();
        xdotool(&["windowfocus", "--sync", &dialog]).await?;
        xdotool(&["key", "--clearmodifiers", "ctrl+a"]).await?;
        xdotool(&["type", "--delay", "15", &typed]).await?;
        xdotool(&["key", "Return"]).await?;
        let said = wait_text(wd, "report-saved", "the saved file", |t| !t.is_empty()).await?;
        anyhow::ensure!(said.contains(&typed), "saved banner: {said:?}");
        let csv = std::fs::read_to_string(&path)?;
        let mut lines = csv.lines();
        anyhow::ensure!(
            lines.next() == Some("day,key_id,key_name,allowed,rate_limited,rejected"),
            "report: {csv:?}"
        );
        anyhow::ensure!(csv.contains(",Reported,"), "report: {csv:?}");
        anyhow::ensure!(
            !dir.join("usage.csv.part").exists(),
            "the .part file was renamed"
        );
        wd.screenshot(&shot("07d-report-saved.png")).await?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(vec![token])
    }
    .await;
    desk.finish("reports", result).await;
}
