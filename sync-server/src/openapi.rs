//! `/openapi.json`, generated from the handlers' annotations and the core wire types.

use keyward_core::api;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http;

#[derive(OpenApi)]
#[openapi(
    info(title = "Keyward", description = "API key management: issue, verify, rotate and revoke keys."),
    paths(
        http::auth::login, http::auth::logout,
        http::keys::create, http::keys::list, http::keys::get, http::keys::update, http::keys::revoke, http::keys::rotate, http::keys::usage,
        http::verify::whoami, http::verify::verify,
        http::audit::list, http::audit::verify_chain,
        http::sync::pull, http::sync::push,
        http::ops::healthz, http::ops::readyz,
    ),
    components(schemas(
        api::Problem, api::FieldError, api::LoginRequest, api::LoginResponse, api::AdminInfo, api::Role,
        api::ApiKey, api::CreateKeyRequest, api::CreatedKey, api::UpdateKeyRequest, api::RevokeKeyRequest,
        api::RotateKeyRequest, api::RotatedKey, api::KeyStatusFilter, api::Whoami, api::VerifyRequest,
        api::VerifyResponse, api::VerifyCode, api::AuditEntry, api::AuditVerifyReport, api::BrokenLink,
        api::PullResponse, api::Change, api::Entity, api::ChangeOp, api::PushRequest, api::PushOp, api::OpKind,
        api::PushResponse, api::OpResult, api::OpStatus, api::RotateOfflineRequest, api::UsageResponse, api::UsagePoint, api::Granularity,
        api::PullResponse, api::Change, api::Entity, api::ChangeOp, api::PushRequest, api::PushOp, api::OpKind,
        api::PushResponse, api::OpResult, api::OpStatus, api::RotateOfflineRequest, api::UsageResponse, api::UsagePoint, api::Granularity,
    )),
    modifiers(&Security),
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
