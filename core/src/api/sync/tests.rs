//! The push operation's wire format: parsing, refusals and the OpenAPI shapes, with property
//! tests over every kind.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::api::{CreateKeyRequest, RevokeKeyRequest, UpdateKeyRequest};
use crate::ids::KeyId;
use crate::token::Environment;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn key_id() -> impl Strategy<Value = KeyId> {
    uuid().prop_map(KeyId::from_uuid)
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\u{a0}-\u{10ffff}]{0,24}"
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
}

fn metadata() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z]{1,8}", text(), 0..3)
        .prop_map(|m| serde_json::to_value(m).unwrap())
}

fn create() -> impl Strategy<Value = CreateKeyRequest> {
    (
        text(),
        prop::option::of(text()),
        prop::option::of(prop_oneof![
            Just(Environment::Live),
            Just(Environment::Test)
        ]),
        prop::option::of(prop::collection::vec(text(), 0..3)),
        prop::option::of(time()),
        prop::option::of(prop::collection::vec(text(), 0..3)),
        prop::option::of(metadata()),
        prop::option::of(text()),
        prop::option::of(key_id()),
        prop::option::of(text()),
    )
        .prop_map(
            |(
                name,
                description,
                environment,
                scopes,
                expires_at,
                ips,
                metadata,
                tier,
                id,
                hash,
            )| {
                CreateKeyRequest {
                    name,
                    description,
                    environment,
                    scopes,
                    expires_at,
                    allowed_ips: ips,
                    metadata,
                    tier,
                    rate_limits: None,
                    quota: None,
                    id,
                    secret_hash: hash,
                }
            },
        )
}

fn update() -> impl Strategy<Value = UpdateKeyRequest> {
    (
        prop::option::of(text()),
        prop::option::of(prop::option::of(text())),
        prop::option::of(prop::collection::vec(text(), 0..3)),
        prop::option::of(prop::collection::vec(text(), 0..3)),
        prop::option::of(prop::option::of(time())),
        prop::option::of(metadata()),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::option::of(text())),
    )
        .prop_map(
            |(name, description, scopes, allowed_ips, expires_at, metadata, disabled, tier)| {
                UpdateKeyRequest {
                    name,
                    description,
                    scopes,
                    allowed_ips,
                    expires_at,
                    metadata,
                    disabled,
                    tier,
                    rate_limits: None,
                    quota: None,
                }
            },
        )
}

/// Every variant, with arbitrary typed fields.
fn push_op() -> impl Strategy<Value = PushOp> {
    prop_oneof![
        (uuid(), create()).prop_map(|(op_id, data)| PushOp::CreateKey { op_id, data }),
        (uuid(), key_id(), prop::option::of(any::<i64>()), update()).prop_map(
            |(op_id, key_id, base_seq, data)| PushOp::UpdateKey {
                op_id,
                key_id,
                base_seq,
                data
            }
        ),
        (
            uuid(),
            key_id(),
            prop::option::of(any::<u32>()),
            prop::option::of(text())
        )
            .prop_map(|(op_id, key_id, grace_seconds, reason)| PushOp::RevokeKey {
                op_id,
                key_id,
                data: RevokeKeyRequest {
                    grace_seconds,
                    reason
                },
            }),
        (
            uuid(),
            key_id(),
            key_id(),
            text(),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(op_id, key_id, new_id, secret_hash, grace_seconds)| {
                PushOp::RotateKey {
                    op_id,
                    key_id,
                    data: RotateOfflineRequest {
                        new_id,
                        secret_hash,
                        grace_seconds,
                    },
                }
            }),
    ]
}

fn refusal(value: Value) -> (RefusalCode, String) {
    match PushOp::parse(value.clone()) {
        Err(OpParseError::Refused {
            code,
            detail,
            op_id,
            ..
        }) => {
            assert_eq!(json!(op_id), value["op_id"], "the refusal names its op");
            (code, detail)
        }
        other => panic!("{value}: expected a refusal, got {other:?}"),
    }
}

fn op_id() -> Value {
    json!(Uuid::now_v7())
}

#[cfg(feature = "openapi")]
#[test]
fn the_openapi_schema_has_one_shape_per_kind() {
    use utoipa::PartialSchema;
    let schema = serde_json::to_value(PushOp::schema()).unwrap();
    let shapes = schema["oneOf"].as_array().expect("one of the kinds");
    let kinds: Vec<&Value> = shapes
        .iter()
        .map(|s| &s["properties"]["kind"]["enum"][0])
        .collect();
    assert_eq!(
        kinds,
        ["create_key", "update_key", "revoke_key", "rotate_key"],
        "{schema:#}"
    );
    for shape in shapes {
        let required = shape["required"].as_array().unwrap();
        assert!(required.contains(&json!("op_id")) && required.contains(&json!("kind")));
    }
}

#[test]
fn the_wire_format_is_the_one_the_desktop_sends() {
    let (op, key, new) = (Uuid::now_v7(), KeyId::new(), KeyId::new());
    let cases = [
        (
            PushOp::CreateKey {
                op_id: op,
                data: CreateKeyRequest {
                    name: "ci".into(),
                    id: Some(key),
                    secret_hash: Some("$argon2id$h".into()),
                    ..Default::default()
                },
            },
            json!({"op_id": op, "kind": "create_key",
                   "data": {"name": "ci", "id": key, "secret_hash": "$argon2id$h"}}),
        ),
        (
            PushOp::UpdateKey {
                op_id: op,
                key_id: key,
                base_seq: Some(7),
                data: UpdateKeyRequest {
                    name: Some("n".into()),
                    description: Some(None),
                    ..Default::default()
                },
            },
            json!({"op_id": op, "kind": "update_key", "key_id": key, "base_seq": 7,
                   "data": {"name": "n", "description": null}}),
        ),
        (
            PushOp::UpdateKey {
                op_id: op,
                key_id: key,
                base_seq: None,
                data: UpdateKeyRequest::default(),
            },
            json!({"op_id": op, "kind": "update_key", "key_id": key, "data": {}}),
        ),
        (
            PushOp::RevokeKey {
                op_id: op,
                key_id: key,
                data: RevokeKeyRequest {
                    grace_seconds: Some(60),
                    reason: Some("leak".into()),
                },
            },
            json!({"op_id": op, "kind": "revoke_key", "key_id": key,
                   "data": {"grace_seconds": 60, "reason": "leak"}}),
        ),
        (
            PushOp::RotateKey {
                op_id: op,
                key_id: key,
                data: RotateOfflineRequest {
                    new_id: new,
                    secret_hash: "$argon2id$h".into(),
                    grace_seconds: Some(0),
                },
            },
            json!({"op_id": op, "kind": "rotate_key", "key_id": key,
                   "data": {"new_id": new, "secret_hash": "$argon2id$h", "grace_seconds": 0}}),
        ),
    ];
    for (typed, wire) in cases {
        assert_eq!(serde_json::to_value(&typed).unwrap(), wire, "{wire}");
        assert_eq!(PushOp::parse(wire.clone()).unwrap(), typed, "{wire}");
        assert_eq!(typed.op_id(), op);
        assert_eq!(typed.key_id(), Some(key));
    }
}

#[test]
fn absent_and_null_optional_fields_read_as_they_always_did() {
    let (op, key) = (Uuid::now_v7(), KeyId::new());
    let revoke_now = PushOp::RevokeKey {
        op_id: op,
        key_id: key,
        data: RevokeKeyRequest::default(),
    };
    for wire in [
        json!({"op_id": op, "kind": "revoke_key", "key_id": key}),
        json!({"op_id": op, "kind": "revoke_key", "key_id": key, "data": null}),
        json!({"op_id": op, "kind": "revoke_key", "key_id": key, "data": {}, "base_seq": null}),
    ] {
        assert_eq!(PushOp::parse(wire.clone()).unwrap(), revoke_now, "{wire}");
    }
    let create = json!({"op_id": op, "kind": "create_key", "key_id": null, "base_seq": null,
                        "data": {"name": "x"}});
    assert_eq!(PushOp::parse(create).unwrap().kind(), OpKind::CreateKey);
    // Through serde too (the client reads its own requests back in tests).
    let req: PushRequest = serde_json::from_value(json!({"ops": [
        {"op_id": op, "kind": "revoke_key", "key_id": key}
    ]}))
    .unwrap();
    assert_eq!(req.ops, [revoke_now]);
}

#[test]
fn an_unknown_kind_is_refused_as_unknown_operation() {
    for kind in [
        "ack_alert",
        "delete_key",
        "CREATE_KEY",
        "create-key",
        "",
        "🔑",
    ] {
        let (code, detail) = refusal(json!({"op_id": op_id(), "kind": kind, "data": {}}));
        assert_eq!(code, RefusalCode::UnknownOperation, "{kind}");
        assert!(detail.starts_with("kind: "), "{detail}");
    }
    let long = "x".repeat(10_000);
    let (_, detail) = refusal(json!({"op_id": op_id(), "kind": long}));
    assert!(detail.len() < 300, "an unknown kind is quoted bounded");
    match PushOp::parse(json!({"op_id": op_id(), "kind": "ack_alert"})) {
        Err(OpParseError::Refused { kind, .. }) => {
            assert_eq!(kind.as_deref(), Some("ack_alert"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_fields_are_refused_as_malformed_operation_naming_the_field() {
    let key = KeyId::new();
    let cases = [
        (json!({"kind": null}), "kind:"),
        (json!({"data": {"name": "x"}}), "kind:"),
        (json!({"kind": 5, "data": {}}), "kind:"),
        (json!({"kind": ["create_key"]}), "kind:"),
        (json!({"kind": "create_key"}), "data:"),
        (json!({"kind": "create_key", "data": {"name": 5}}), "data:"),
        (json!({"kind": "create_key", "data": "x"}), "data:"),
        (json!({"kind": "create_key", "data": {}}), "data:"),
        (
            json!({"kind": "create_key", "data": {"name": "x", "colour": 1}}),
            "data:",
        ),
        (
            json!({"kind": "create_key", "key_id": key, "data": {"name": "x"}}),
            "key_id:",
        ),
        (json!({"kind": "update_key", "data": {}}), "key_id:"),
        (
            json!({"kind": "update_key", "key_id": "k", "data": {}}),
            "key_id:",
        ),
        (
            json!({"kind": "update_key", "key_id": 5, "data": {}}),
            "key_id:",
        ),
        (json!({"kind": "update_key", "key_id": key}), "data:"),
        (
            json!({"kind": "update_key", "key_id": key, "data": {"colour": "red"}}),
            "data:",
        ),
        (
            json!({"kind": "update_key", "key_id": key, "data": {"disabled": "yes"}}),
            "data:",
        ),
        (
            json!({"kind": "update_key", "key_id": key, "base_seq": "1", "data": {}}),
            "base_seq:",
        ),
        (
            json!({"kind": "update_key", "key_id": key, "base_seq": 1.5, "data": {}}),
            "base_seq:",
        ),
        (json!({"kind": "revoke_key", "data": {}}), "key_id:"),
        (
            json!({"kind": "revoke_key", "key_id": key, "base_seq": 3}),
            "base_seq:",
        ),
        (
            json!({"kind": "revoke_key", "key_id": key, "data": {"grace_seconds": -1}}),
            "data:",
        ),
        (
            json!({"kind": "revoke_key", "key_id": key, "data": {"grace_seconds": "a\u{0}b"}}),
            "data:",
        ),
        (
            json!({"kind": "revoke_key", "key_id": key, "data": []}),
            "data:",
        ),
        (
            json!({"kind": "rotate_key", "key_id": key, "data": {"secret_hash": "h"}}),
            "data:",
        ),
        (json!({"kind": "rotate_key", "key_id": key}), "data:"),
        (
            json!({"kind": "rotate_key", "key_id": key, "data": {}, "extra": 1}),
            "extra:",
        ),
    ];
    for (mut wire, field) in cases {
        wire["op_id"] = op_id();
        let (code, detail) = refusal(wire.clone());
        assert_eq!(code, RefusalCode::MalformedOperation, "{wire}");
        assert!(detail.starts_with(field), "{wire}: {detail}");
        assert_eq!(code.as_str(), "malformed_operation");
    }
}

#[test]
fn an_operation_without_a_usable_op_id_cannot_be_answered() {
    for wire in [
        json!({"kind": "revoke_key", "key_id": KeyId::new()}),
        json!({"op_id": null, "kind": "revoke_key"}),
        json!({"op_id": "not a uuid", "kind": "revoke_key"}),
        json!({"op_id": 7, "kind": "nope"}),
        json!("create_key"),
        json!([1, 2]),
        json!(null),
    ] {
        assert!(
            matches!(PushOp::parse(wire.clone()), Err(OpParseError::NoOpId(_))),
            "{wire}"
        );
    }
    assert!(serde_json::from_value::<ReceivedPush>(json!({"ops": [5], "x": 1})).is_err());
    let received: ReceivedPush = serde_json::from_value(json!({"ops": [5, {}]})).unwrap();
    assert_eq!(received.ops.len(), 2, "each op is read on its own, later");
}

proptest! {
    #[test]
    fn every_variant_round_trips(op in push_op()) {
        let wire = serde_json::to_value(&op).unwrap();
        prop_assert_eq!(&wire["kind"], op.kind().as_str());
        prop_assert_eq!(PushOp::parse(wire.clone()).unwrap(), op.clone());
        let text = serde_json::to_string(&op).unwrap();
        prop_assert_eq!(serde_json::from_str::<PushOp>(&text).unwrap(), op.clone());
        prop_assert_eq!(OpKind::from_name(op.kind().as_str()), Some(op.kind()));
    }

    #[test]
    fn any_other_kind_is_an_unknown_operation(op in push_op(), kind in "\\PC{0,20}") {
        prop_assume!(OpKind::from_name(&kind).is_none());
        let mut wire = serde_json::to_value(&op).unwrap();
        wire["kind"] = json!(kind);
        let (code, _) = refusal(wire);
        prop_assert_eq!(code, RefusalCode::UnknownOperation);
    }

    /// A field of the op replaced by a value of no type it could have: the op is refused
    /// as malformed, naming that field, and nothing else is read from it.
    #[test]
    fn a_wrong_typed_field_is_a_malformed_operation(
        op in push_op(),
        pick in any::<prop::sample::Index>(),
        bad in prop_oneof![Just(json!(true)), Just(json!([1])), Just(json!(-1.5))],
    ) {
        let mut wire = serde_json::to_value(&op).unwrap();
        let fields: Vec<String> = wire
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "op_id" && *k != "kind")
            .cloned()
            .collect();
        let field = pick.get(&fields).clone();
        wire[&field] = bad;
        let (code, detail) = refusal(wire);
        prop_assert_eq!(code, RefusalCode::MalformedOperation);
        prop_assert!(detail.starts_with(&format!("{field}:")), "{}", detail);
    }

    #[test]
    fn a_field_of_another_kind_is_a_malformed_operation(op in push_op(), seq in any::<i64>()) {
        let mut wire = serde_json::to_value(&op).unwrap();
        let field = match op.kind() {
            OpKind::UpdateKey => "colour",
            OpKind::CreateKey => "key_id",
            _ => "base_seq",
        };
        wire[field] = json!(seq.to_string());
        let (code, detail) = refusal(wire);
        prop_assert_eq!(code, RefusalCode::MalformedOperation);
        prop_assert!(detail.starts_with(&format!("{field}:")), "{}", detail);
    }
}
