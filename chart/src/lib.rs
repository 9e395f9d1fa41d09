//! Usage graphs for the desktop UI, drawn with egui_plot in a canvas (wasm32). The JS side
//! calls `mount(canvas_id)` and then `set_series(json)` whenever the data changes.

pub mod series;

#[cfg(target_arch = "wasm32")]
mod web {
    use std::sync::{Arc, Mutex};

    use egui_plot::{HoverPosition, Legend, Line, Plot, PlotPoints, Points};
    use wasm_bindgen::prelude::*;

    use crate::series::{self, UsageSeries};

    #[derive(Default)]
    struct Shared {
        series: UsageSeries,
        version: u64,
    }

    struct ChartApp {
        shared: Arc<Mutex<Shared>>,
        seen: u64,
    }

    impl eframe::App for ChartApp {
        fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
            let shared = self.shared.lock().map(|s| (s.series.clone(), s.version)).ok();
            let Some((data, version)) = shared else { return };
            let reset = version != self.seen;
            self.seen = version;
            if data.points.is_empty() {
                ui.centered_and_justified(|ui| ui.label("No usage recorded"));
                return;
            }
            let g = data.granularity;
            let mut plot = Plot::new("usage")
                .legend(Legend::default())
                .allow_zoom(true)
                .allow_drag(true)
                .allow_scroll(true)
                .x_axis_formatter(move |mark, _range| series::time_label(mark.value, g))
                .label_formatter({
                    let data = data.clone();
                    move |hover: &HoverPosition<'_>| {
                        let x = match hover {
                            HoverPosition::NearDataPoint { position, .. } => position.x,
                            HoverPosition::Elsewhere { position } => position.x,
                        };
                        series::nearest(&data, x).map(|p| series::hover_text(p, g))
                    }
                });
            if reset {
                plot = plot.reset();
            }
            plot.show(ui, |plot_ui| {
                for (name, points) in series::lines(&data) {
                    // Markers too, so a lone bucket is visible, not a zero-length line.
                    plot_ui.points(Points::new(name, PlotPoints::from(points.clone())).radius(2.5));
                    plot_ui.line(Line::new(name, PlotPoints::from(points)));
                }
            });
        }
    }

    /// A mounted chart; `set_series` replaces its data.
    #[wasm_bindgen]
    pub struct ChartHandle {
        shared: Arc<Mutex<Shared>>,
        runner: eframe::WebRunner,
        ctx: Arc<Mutex<Option<egui::Context>>>,
    }

    #[wasm_bindgen]
    impl ChartHandle {
        pub fn set_series(&self, json: &str) -> Result<(), JsValue> {
            let parsed: UsageSeries = serde_json::from_str(json).map_err(|e| JsValue::from_str(&e.to_string()))?;
            if let Ok(mut s) = self.shared.lock() {
                s.series = parsed;
                s.version += 1;
            }
            if let Some(ctx) = self.ctx.lock().ok().and_then(|c| c.clone()) {
                ctx.request_repaint();
            }
            Ok(())
        }

        pub fn destroy(&self) {
            self.runner.destroy();
        }
    }

    #[wasm_bindgen]
    pub async fn mount(canvas_id: String) -> Result<ChartHandle, JsValue> {
        let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
        let canvas = document
            .get_element_by_id(&canvas_id)
            .ok_or_else(|| JsValue::from_str(&format!("no element #{canvas_id}")))?
            .dyn_into::<web_sys::HtmlCanvasElement>()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let ctx_slot: Arc<Mutex<Option<egui::Context>>> = Arc::default();
        let runner = eframe::WebRunner::new();
        let (app_shared, app_ctx) = (shared.clone(), ctx_slot.clone());
        runner
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(move |cc| {
                    // Light, to match the rest of the UI.
                    cc.egui_ctx.set_visuals(egui::Visuals::light());
                    if let Ok(mut slot) = app_ctx.lock() {
                        *slot = Some(cc.egui_ctx.clone());
                    }
                    Ok(Box::new(ChartApp { shared: app_shared, seen: 0 }))
                }),
            )
            .await?;
        Ok(ChartHandle { shared, runner, ctx: ctx_slot })
    }
}
