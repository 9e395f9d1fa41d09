//! `/openapi.json`, generated from the handlers' annotations and the core wire types.

use keyward_core::api;
use keyward_core::api::webhooks as wh;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        crate::gateway::forward,
        http::ops::healthz, http::ops::readyz, http::ops::metrics,
    ),
    components(schemas(
        api::Problem, api::FieldError, api::LoginRequest, api::LoginResponse, api::ChangePasswordRequest, api::AdminInfo, api::Role,
        api::ApiKey, api::CreateKeyRequest, api::CreatedKey, api::UpdateKeyRequest, api::RevokeKeyRequest,
        api::RotateKeyRequest, api::RotatedKey, api::KeyStatusFilter, api::Whoami, api::VerifyRequest,
        api::VerifyResponse, api::VerifyCode, api::AuditEntry, api::AuditVerifyReport, api::AuditHead, api::BrokenLink,
        api::PullResponse, api::Change, api::Entity, api::ChangeOp, api::PushRequest, api::PushOp, api::OpKind,
        api::PushResponse, api::OpResult, api::OpStatus, api::RotateOfflineRequest, api::UsageResponse, api::UsagePoint, api::Granularity,
        api::RateLimitRule, api::Quota, api::Tier, api::CreateTierRequest, api::UpdateTierRequest, api::LimitState,
        api::QuotaState, api::KeyLimits, api::LimitUsage, api::Violation, api::ViolationList,
        api::OrgUsage, api::UsageTotals, api::KeyUsageTotal, api::KeySeries, api::OutcomeSeries, api::CountPoint,
        api::UsageGroupBy, api::ReportFormat, api::ReportRow,
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

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
