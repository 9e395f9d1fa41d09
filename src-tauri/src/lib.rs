//! Keyward desktop: a thin Tauri shell. Commands call into [`services::Desktop`], which works
//! on the local replica (reads, offline writes) and syncs with the server in the background.

mod bindings;
pub mod commands;
pub mod credentials;
pub mod dto;
pub mod error;
pub mod report;
pub mod services;

use std::path::PathBuf;

use tauri::{Emitter, Manager};

/// Where the replica and the (non-secret) settings live: `KEYWARD_DESKTOP_DATA_DIR`, or the
/// platform's app data directory.
fn data_dir(app: &tauri::AppHandle) -> PathBuf {
    std::env::var_os("KEYWARD_DESKTOP_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| app.path().app_data_dir().ok())
        .unwrap_or_else(|| PathBuf::from(".keyward"))
}

/// Every command, for the real app and for the mock-runtime tests.
#[macro_export]
macro_rules! handlers {
    () => {
        tauri::generate_handler![
            $crate::commands::login,
            $crate::commands::logout,
            $crate::commands::change_password,
            $crate::commands::logout_everywhere,
            $crate::commands::current_session,
            $crate::commands::list_keys,
            $crate::commands::get_key,
            $crate::commands::create_key,
            $crate::commands::update_key,
            $crate::commands::revoke_key,
            $crate::commands::rotate_key,
            $crate::commands::rejected_changes,
            $crate::commands::retry_rejected,
            $crate::commands::discard_rejected,
            $crate::commands::dismiss_key_error,
            $crate::commands::audit_log,
            $crate::commands::sync_status,
            $crate::commands::sync_now,
            $crate::commands::key_usage,
            $crate::commands::key_limits,
            $crate::commands::key_gateway,
            $crate::commands::key_networks,
            $crate::commands::alert_settings,
            $crate::commands::set_alert_settings,
            $crate::commands::dashboard,
            $crate::commands::alerts,
            $crate::commands::ack_alert,
            $crate::commands::events,
            $crate::commands::save_report,
        ]
    };
}

pub fn builder() -> tauri::Builder<tauri::Wry> {
    tauri::Builder::default()
        // The report screen's save dialog (JS `save()`, allowed in capabilities/default.json).
        .plugin(tauri_plugin_dialog::init())
        // Native notifications for synced alerts and key notices, shown from Rust.
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(handlers!())
        .setup(|app| {
            let handle = app.handle().clone();
            let desktop =
                tauri::async_runtime::block_on(services::Desktop::open(data_dir(&handle)))?;
            let notify_handle = handle.clone();
            desktop.set_notifier(std::sync::Arc::new(move |n: &keyward_replica::Notice| {
                use tauri_plugin_notification::NotificationExt;
                notify_handle
                    .notification()
                    .builder()
                    .title(&n.title)
                    .body(&n.body)
                    .show()
                    .map_err(|e| e.to_string())
            }));
            let mut updates = desktop.subscribe();
            app.manage(desktop);
            tauri::async_runtime::spawn(async move {
                while updates.changed().await.is_ok() {
                    let status = updates.borrow_and_update().clone();
                    let _ = handle.emit("sync-status", status);
                }
            });
            Ok(())
        })
}

pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    if let Err(e) = builder().run(tauri::generate_context!()) {
        eprintln!("error: Keyward could not start: {e}");
        std::process::exit(1);
    }
}
