//! `GET /v1/keys/{id}/usage`: counts by outcome per bucket, a rotation lineage read as one
//! history, and refused ranges.

use keyward_core::api::{CreateKeyRequest, Granularity, RotateKeyRequest, UsageQuery};
use keyward_e2e::{TestApp, eventually};

#[tokio::test]
async fn usage_reads_as_one_history_across_rotation() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "u".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = key.token.unwrap();
    for _ in 0..3 {
        app.anon.whoami(&token).await.unwrap();
    }
    let rotated = app
        .owner
        .rotate_key(
            key.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(0),
            },
        )
        .await
        .unwrap();
    for _ in 0..2 {
        app.anon.whoami(&rotated.token).await.unwrap();
    }
    let _ = app.anon.whoami(&token).await.unwrap_err();

    let q = UsageQuery {
        granularity: Some(Granularity::Minute),
        ..Default::default()
    };
    let totals = || async {
        let series = app
            .owner
            .key_usage(rotated.key.id, &q)
            .await
            .unwrap()
            .series;
        (
            series.iter().map(|p| p.allowed).sum::<i64>(),
            series.iter().map(|p| p.rejected).sum::<i64>(),
        )
    };
    assert!(
        eventually(std::time::Duration::from_secs(3), || async {
            totals().await == (5, 1)
        })
        .await,
        "{:?}",
        totals().await
    );
    let old = app.owner.key_usage(key.key.id, &q).await.unwrap();
    assert_eq!(
        old.series,
        app.owner
            .key_usage(rotated.key.id, &q)
            .await
            .unwrap()
            .series,
        "one lineage, one history"
    );

    let now = chrono::Utc::now();
    let bad = [
        UsageQuery {
            from: Some(now),
            to: Some(now - chrono::Duration::hours(1)),
            granularity: None,
        },
        UsageQuery {
            from: Some(now - chrono::Duration::days(8)),
            to: Some(now),
            granularity: Some(Granularity::Minute),
        },
    ];
    for q in bad {
        assert_eq!(
            app.owner
                .key_usage(key.key.id, &q)
                .await
                .unwrap_err()
                .code(),
            Some("validation_failed")
        );
    }
    let other = app
        .admin("Globex", "g@globex.test", keyward_core::api::Role::Owner)
        .await;
    assert_eq!(
        other
            .key_usage(key.key.id, &UsageQuery::default())
            .await
            .unwrap_err()
            .code(),
        Some("key_not_found")
    );
}
