//! The browser half: an eframe app in a canvas drawing one [`ChartData`] with egui_plot.

use std::cell::RefCell;
use std::rc::Rc;

use egui::{Color32, Vec2, Vec2b};
use egui_plot::{
    Corner, GridInput, GridMark, HoverPosition, Legend, Line, Plot, PlotPoint, PlotPoints, Points,
};
use wasm_bindgen::prelude::*;

use crate::series::{self, ChartData, Outcome};

/// A series converted once for egui_plot (drawn from borrowed slices every frame).
#[derive(Default)]
struct Prepared {
    data: ChartData,
    lines: [Vec<PlotPoint>; 3],
    markers: Option<[Vec<PlotPoint>; 3]>,
}

impl Prepared {
    fn new(data: ChartData) -> Self {
        let to_points = |v: &Vec<[f64; 2]>| v.iter().copied().map(PlotPoint::from).collect();
        let lines = data.lines.each_ref().map(to_points);
        let markers = data
            .show_markers()
            .then(|| data.markers().each_ref().map(to_points));
        Prepared {
            data,
            lines,
            markers,
        }
    }
}

/// What the JS handle and the app share (single-threaded: wasm in the page's main thread).
#[derive(Default)]
struct Shared {
    chart: Rc<Prepared>,
    /// Bumped by every `set_series`, so the app resets the view to the new data.
    version: u64,
    ctx: Option<egui::Context>,
}

struct ChartApp {
    shared: Rc<RefCell<Shared>>,
    seen: u64,
}

impl eframe::App for ChartApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let (chart, version) = {
            let shared = self.shared.borrow();
            (shared.chart.clone(), shared.version)
        };
        let reset = version != self.seen;
        self.seen = version;
        egui::Frame::central_panel(ui.style()).show(ui, |ui| draw(ui, &chart, reset));
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }
}

fn color(o: Outcome) -> Color32 {
    let [r, g, b] = o.rgb();
    Color32::from_rgb(r, g, b)
}

fn marks(v: Vec<(f64, f64)>) -> Vec<GridMark> {
    v.into_iter()
        .map(|(value, step_size)| GridMark { value, step_size })
        .collect()
}

fn draw(ui: &mut egui::Ui, chart: &Prepared, reset: bool) {
    let data = &chart.data;
    if data.is_empty() {
        ui.centered_and_justified(|ui| ui.weak("No usage recorded"));
        return;
    }
    let g = data.granularity;
    let mut plot = Plot::new("usage")
        .legend(Legend::default().position(Corner::LeftTop))
        // Drag pans, ctrl + wheel (or a pinch) zooms both axes, the wheel zooms time (below),
        // a horizontal wheel or shift + wheel pans time, a double click resets.
        .allow_drag(true)
        .allow_zoom(true)
        .allow_scroll(Vec2b::new(true, false))
        .allow_double_click_reset(true)
        .x_axis_label(match g {
            series::Granularity::Day => "day (UTC)",
            _ => "time (UTC)",
        })
        .y_axis_label("calls")
        .x_grid_spacer(move |input: GridInput| {
            marks(series::time_marks(input.bounds, input.base_step_size, g))
        })
        .y_grid_spacer(|input: GridInput| {
            marks(series::count_marks(input.bounds, input.base_step_size))
        })
        .x_axis_formatter(move |mark, _range| series::axis_label(mark.value, mark.step_size, g))
        .y_axis_formatter(|mark, _range| series::count_label(mark.value))
        .label_formatter(move |hover: &HoverPosition<'_>| {
            let x = match hover {
                HoverPosition::NearDataPoint { position, .. } => position.x,
                HoverPosition::Elsewhere { position } => position.x,
            };
            data.bucket_at(x).map(|b| series::hover_text(&b, g))
        })
        .include_x(data.x_range.0)
        .include_x(data.x_range.1)
        .include_y(0.0)
        .include_y(data.y_max);
    if reset {
        plot = plot.reset();
    }
    plot.show(ui, |plot_ui| {
        if plot_ui.response().hovered() {
            let wheel = plot_ui.ctx().input(|i| i.smooth_scroll_delta.y);
            if wheel != 0.0 {
                plot_ui.zoom_bounds_around_hovered(Vec2::new((wheel / 200.0).exp(), 1.0));
            }
        }
        for (i, o) in Outcome::ALL.into_iter().enumerate() {
            let line = PlotPoints::Borrowed(&chart.lines[i]);
            // No bands: egui_plot merges points less than a pixel apart into a band and
            // interpolates between bands, which draws a lone spike after a long quiet stretch
            // as a ramp across the whole stretch.
            plot_ui.line(
                Line::new(o.name(), line)
                    .color(color(o))
                    .width(1.5)
                    .allow_band(false),
            );
            if let Some(markers) = &chart.markers {
                let dots = PlotPoints::Borrowed(&markers[i]);
                plot_ui.points(Points::new(o.name(), dots).color(color(o)).radius(2.5));
            }
        }
    });
}

/// A mounted chart (returned by `mount`).
#[wasm_bindgen]
pub struct ChartHandle {
    shared: Rc<RefCell<Shared>>,
    runner: eframe::WebRunner,
}

#[wasm_bindgen]
impl ChartHandle {
    /// Replaces the data with a `UsageSeries` as JSON and redraws (the view resets to it).
    /// Throws on JSON that is not a usage series.
    pub fn set_series(&self, json: &str) -> Result<(), JsValue> {
        let data = ChartData::from_json(json).map_err(|e| JsValue::from_str(&e))?;
        let ctx = {
            let mut shared = self.shared.borrow_mut();
            shared.chart = Rc::new(Prepared::new(data));
            shared.version += 1;
            shared.ctx.clone()
        };
        if let Some(ctx) = ctx {
            ctx.request_repaint();
        }
        Ok(())
    }

    /// Stops drawing and removes the chart's event listeners from the page.
    pub fn destroy(&self) {
        self.runner.destroy();
        self.shared.borrow_mut().ctx = None;
    }
}

/// Starts the chart in `<canvas id=canvas_id>`; it shows "No usage recorded" until
/// `set_series` gives it data.
#[wasm_bindgen]
pub async fn mount(canvas_id: String) -> Result<ChartHandle, JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let canvas = document
        .get_element_by_id(&canvas_id)
        .ok_or_else(|| JsValue::from_str(&format!("no element #{canvas_id}")))?
        .dyn_into::<web_sys::HtmlCanvasElement>()
        .map_err(|_| JsValue::from_str(&format!("#{canvas_id} is not a <canvas>")))?;
    let shared = Rc::new(RefCell::new(Shared::default()));
    let runner = eframe::WebRunner::new();
    let app_shared = shared.clone();
    runner
        .start(
            canvas,
            eframe::WebOptions::default(),
            Box::new(move |cc| {
                // Light, like the rest of the UI, whatever the system's theme.
                cc.egui_ctx.set_theme(egui::Theme::Light);
                // White, like the canvas' own background in styles.css.
                cc.egui_ctx.style_mut_of(egui::Theme::Light, |s| {
                    s.visuals.panel_fill = Color32::WHITE
                });
                app_shared.borrow_mut().ctx = Some(cc.egui_ctx.clone());
                Ok(Box::new(ChartApp {
                    shared: app_shared,
                    seen: 0,
                }))
            }),
        )
        .await?;
    Ok(ChartHandle { shared, runner })
}
