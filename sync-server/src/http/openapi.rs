//! `/openapi.json`, generated from the handlers' annotations and the core wire types.

use keyward_core::api;
use keyward_core::api::webhooks as wh;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::http;

#[derive(OpenApi)]
#[openapi(
    info(title = "Keyward", description = "API key management: issue, verify, rotate and revoke keys."),
    paths(
        http::auth::login, http::auth::logout,
        http::sessions::change_password, http::sessions::logout_all,
        http::keys::create, http::keys::list, http::keys::get, http::keys::update, http::keys::revoke, http::keys::rotate, http::keys::usage,
        http::verify::whoami, http::verify::verify,
        http::audit::list, http::audit::verify_chain,
        http::events::list,
        http::sync::pull, http::sync::push,
        http::tiers::list, http::tiers::create, http::tiers::get, http::tiers::update, http::tiers::delete,
        http::limits::key_limits, http::limits::violations,
        http::usage::org_usage, http::usage::report,
        http::alerts::list, http::alerts::ack, http::alerts::settings, http::alerts::update_settings,
        http::gateway_usage::org_gateway, http::gateway_usage::key_gateway, http::gateway_usage::key_networks,
        http::webhooks::list, http::webhooks::create, http::webhooks::get, http::webhooks::delete,
        http::webhooks::test, http::webhooks::deliveries,
        http::gateway::forward,
        http::ops::healthz, http::ops::readyz, http::ops::metrics,
    ),
    components(schemas(
        api::Problem, api::FieldError, api::LoginRequest, api::LoginResponse, api::ChangePasswordRequest, api::AdminInfo, api::Role,
        api::ApiKey, api::CreateKeyRequest, api::CreatedKey, api::UpdateKeyRequest, api::RevokeKeyRequest,
        api::RotateKeyRequest, api::RotatedKey, api::KeyStatusFilter, api::Whoami, api::VerifyRequest,
        api::VerifyResponse, api::VerifyCode, api::AuditEntry, api::AuditVerifyReport, api::AuditHead, api::BrokenLink,
        api::PullResponse, api::Change, api::Entity, api::ChangeOp, api::PushRequest, api::sync::ReceivedPush, api::sync::ReceivedOp, api::PushOp, api::OpKind,
        api::PushResponse, api::OpResult, api::OpStatus, api::RotateOfflineRequest, api::UsageResponse, api::UsagePoint, api::Granularity,
        api::RateLimitRule, api::Consistency, api::Quota, api::Tier, api::CreateTierRequest, api::UpdateTierRequest, api::LimitState,
        api::QuotaState, api::KeyLimits, api::LimitUsage, api::QuotaForecast, keyward_core::limit::forecast::Confidence, api::Violation, api::ViolationList,
        api::OrgUsage, api::UsageTotals, api::KeyUsageTotal, api::KeySeries, api::OutcomeSeries, api::CountPoint,
        api::UsageGroupBy, api::ReportFormat, api::ReportRow, http::usage::UsageReport,
        api::Alert, api::AlertStatus, api::AlertFilter, api::AlertList, keyward_core::anomaly::Thresholds,
        api::GatewayUsage, api::GatewayGroup, api::StatusCounts, api::KeyNetwork, api::KeyNetworkList,
        api::Webhook, api::CreateWebhookRequest, api::CreatedWebhook, api::WebhookTestResponse,
        api::WebhookDelivery, api::WebhookAttempt, api::DeliveryStatus,
        // The events deliveries carry: `{"type", "timestamp", "data"}` with these payloads.
        wh::WebhookEvent, wh::AlertOpenedData, wh::AlertAckedData, wh::AlertResolvedData,
        wh::KeyCreatedData, wh::KeyRevokedData, wh::KeyRotatedData, wh::KeyExpiredData,
        wh::KeyNoticeData, wh::LimitEventData, wh::WebhookTestData,
        // `GET /v1/events`: the same events, recorded whether or not a webhook subscribes.
        api::OrgEvent,
    )),
    modifiers(&Security, &Exact),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |format: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .build(),
            )
        };
        components.add_security_scheme("session", bearer("kws_ session token"));
        components.add_security_scheme("api_key", bearer("kw_{live|test}_ API key"));
    }
}

/// Makes the generated document say exactly what the server does (checked by schemathesis in
/// `scripts/schemathesis.sh`):
/// - every error answer is `application/problem+json` with the `Problem` schema, and every
///   operation lists the errors its extractors and middleware can produce on top of its own
///   (see [`common_errors`]);
/// - `/gw/{path}` lists every method the gateway forwards, not only `GET`;
/// - operation ids are unique (`<tag>_<handler>`), and responses that create or list resources
///   link to the operations on them (`POST /v1/keys` → `/v1/keys/{id}`...).
struct Exact;

impl Modify for Exact {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        gateway_methods(doc.paths.paths.get_mut("/gw/{path}"));
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                unique_operation_id(method, op);
                common_errors(path, method, op);
                problem_errors(op);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
    .collect()
}

/// The gateway forwards every method the upstream may serve; each is documented like `GET`.
fn gateway_methods(item: Option<&mut PathItem>) {
    let Some(item) = item else { return };
    let Some(get) = item.get.clone() else { return };
    let with_body = |mut op: Operation| {
        op.request_body = Some(
            utoipa::openapi::request_body::RequestBodyBuilder::new()
                .description(Some("passed to the upstream as it is"))
                .content("*/*", Content::new(None::<RefOr<utoipa::openapi::Schema>>))
                .build(),
        );
        Some(op)
    };
    item.head = Some(get.clone());
    item.options = Some(get.clone());
    item.delete = Some(get.clone());
    item.post = with_body(get.clone());
    item.put = with_body(get.clone());
    item.patch = with_body(get);
}

/// `<tag>_<handler>`: utoipa names an operation after its handler, and `create`, `list`, `get`...
/// exist in several modules.
fn unique_operation_id(method: &str, op: &mut Operation) {
    let tag = op
        .tags
        .as_ref()
        .and_then(|t| t.first())
        .cloned()
        .unwrap_or_default();
    let id = op.operation_id.clone().unwrap_or_default();
    let id = if tag == "gateway" && id == "forward" {
        format!("forward_{method}")
    } else {
        id
    };
    if !tag.is_empty() && !id.starts_with(&format!("{tag}_")) {
        op.operation_id = Some(format!("{tag}_{id}").replace('-', "_"));
    }
}

fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .into()
}

/// The errors every operation of its shape can answer, whatever its handler does:
/// - a JSON body: 400 (not JSON), 408 (not received in time), 413 (over 1 MiB), 415 (not
///   `application/json`), 422 (wrong shape, unknown field, invalid value);
/// - query parameters: 400 (unreadable), 422 (wrong type, unknown parameter, invalid value);
/// - path parameters: 400 (not UTF-8 once decoded), 404 (no such resource);
/// - a session: 401 (none, expired or revoked); 403 on writes (the viewer role is read-only);
/// - the database: 503 `database_unavailable` (everything but the liveness probe, the metrics
///   and this document).
fn common_errors(path: &str, method: &str, op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
    let has_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path));
    let gateway = path.starts_with("/gw/");
    let json_body = !gateway && op.request_body.is_some();
    let security = serde_json::to_string(&op.security).unwrap_or_default();
    let session = security.contains("\"session\"");
    let static_doc = matches!(path, "/healthz" | "/metrics" | "/openapi.json");

    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
    };
    if json_body {
        add("400", "`malformed_body`: the body is not JSON");
        add("408", "`body_timeout`: the body did not arrive in time");
        add("413", "`payload_too_large`: the body is over 1 MiB");
        add(
            "415",
            "`unsupported_media_type`: the body is not `application/json`",
        );
        add(
            "422",
            "`validation_failed`: the body does not fit the schema; `errors` names each field",
        );
    }
    if has_query {
        add(
            "400",
            "`malformed_body`: the query string could not be read",
        );
        add(
            "422",
            "`validation_failed`: a query parameter does not fit the schema; `errors` names it",
        );
    }
    if has_path && !gateway {
        add(
            "400",
            "`invalid_path`: a path parameter is not UTF-8 once decoded",
        );
        add("404", "no such resource in this organization");
    }
    if session {
        add(
            "401",
            "`unauthenticated`: no session, or an expired or revoked one",
        );
        if method != "get" {
            add("403", "`forbidden`: the viewer role is read-only");
        }
    }
    if !static_doc {
        add(
            "503",
            "`database_unavailable`: the database cannot be reached; retry shortly",
        );
    }
}

/// Every error answer is RFC 9457 problem+json, whatever the annotation said.
fn problem_errors(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        let schema = response
            .content
            .shift_remove("application/json")
            .and_then(|c| c.schema)
            .unwrap_or_else(|| Ref::from_schema_name("Problem").into());
        response
            .content
            .entry("application/problem+json".to_owned())
            .or_insert_with(|| Content::new(Some(schema)));
        if response.description.is_empty() {
            response.description = "a problem document".to_owned();
        }
    }
}

/// `operationRef` of an operation, as a JSON pointer into this document.
fn op_ref(path: &str, method: &str) -> String {
    format!(
        "#/paths/{}/{method}",
        path.replace('~', "~0").replace('/', "~1")
    )
}

/// Links from the responses that name a resource to the operations on it, so a client (and
/// schemathesis' stateful phase) can follow `POST /v1/keys` → `GET /v1/keys/{id}`...
/// Written into the JSON: utoipa 5 serialises `Link` with snake_case field names.
fn links(doc: &mut serde_json::Value) {
    let key_ops: &[(&str, &str)] = &[
        ("/v1/keys/{id}", "get"),
        ("/v1/keys/{id}", "patch"),
        ("/v1/keys/{id}/revoke", "post"),
        ("/v1/keys/{id}/rotate", "post"),
        ("/v1/keys/{id}/usage", "get"),
        ("/v1/keys/{id}/limits", "get"),
        ("/v1/keys/{id}/gateway", "get"),
        ("/v1/keys/{id}/networks", "get"),
    ];
    let tier_ops: &[(&str, &str)] = &[
        ("/v1/tiers/{name}", "get"),
        ("/v1/tiers/{name}", "patch"),
        ("/v1/tiers/{name}", "delete"),
    ];
    let webhook_ops: &[(&str, &str)] = &[
        ("/v1/webhooks/{id}", "get"),
        ("/v1/webhooks/{id}", "delete"),
        ("/v1/webhooks/{id}/test", "post"),
        ("/v1/webhooks/{id}/deliveries", "get"),
    ];
    let alert_ops: &[(&str, &str)] = &[("/v1/alerts/{id}/ack", "post")];
    // (source path, method, status, parameter, runtime expression, targets)
    type Source<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
    );
    let sources: &[Source] = &[
        (
            "/v1/keys",
            "post",
            "201",
            "id",
            "$response.body#/id",
            key_ops,
        ),
        (
            "/v1/keys",
            "get",
            "200",
            "id",
            "$response.body#/items/0/id",
            key_ops,
        ),
        (
            "/v1/keys/{id}/rotate",
            "post",
            "201",
            "id",
            "$response.body#/id",
            key_ops,
        ),
        (
            "/v1/tiers",
            "post",
            "201",
            "name",
            "$response.body#/name",
            tier_ops,
        ),
        (
            "/v1/tiers",
            "get",
            "200",
            "name",
            "$response.body#/items/0/name",
            tier_ops,
        ),
        (
            "/v1/webhooks",
            "post",
            "201",
            "id",
            "$response.body#/id",
            webhook_ops,
        ),
        (
            "/v1/webhooks",
            "get",
            "200",
            "id",
            "$response.body#/items/0/id",
            webhook_ops,
        ),
        (
            "/v1/alerts",
            "get",
            "200",
            "id",
            "$response.body#/items/0/id",
            alert_ops,
        ),
    ];
    for (path, method, status, param, expr, targets) in sources {
        let pointer = format!(
            "{}/responses/{status}",
            op_ref(path, method).trim_start_matches('#')
        );
        let Some(response) = doc.pointer_mut(&pointer) else {
            continue;
        };
        for (target_path, target_method) in *targets {
            let name = format!(
                "{target_method}_{}",
                target_path
                    .trim_start_matches("/v1/")
                    .replace(['{', '}'], "")
                    .replace('/', "_")
            );
            response["links"][name] = serde_json::json!({
                "operationRef": op_ref(target_path, target_method),
                "parameters": { *param: expr },
            });
        }
    }
}

/// The document served at `/openapi.json` (built once).
pub fn document() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        links(&mut doc);
        doc
    })
}
