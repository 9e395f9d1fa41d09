//! Usage graphs for the desktop UI, drawn with egui_plot in a `<canvas>` (wasm32). The JS side
//! (ui/src/chart/index.ts) calls `mount(canvas_id)`, then `set_series(json)` whenever the data
//! changes, and `destroy()` when the canvas goes away.
//!
//! Everything that decides what is drawn lives in [`series`] (plain Rust, tested on the host);
//! the wasm-only half in `web` hands it to eframe and egui_plot.

pub mod series;

#[cfg(target_arch = "wasm32")]
mod web;
