//! The client-credentials grant: a platform service's id and secret get a token with the
//! `service` role, which passes no check meant for a person.

mod helpers;

use std::time::Duration;

use helpers::{Harness, status};
use shopmesh_identity::{AccessToken, JwksSource, Role, RoleMapping, TokenVerifier, TrustedIssuer};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_openapi::users::ClientCredentials;
use shopmesh_testkit::service_client_secret;

/// The orders service's token, from its configured secret.
async fn orders_token(h: &Harness) -> shopmesh_openapi::users::ServiceTokenResponse {
    let secret = service_client_secret(&h.stack, "orders");
    h.client
        .issue_service_token(&credentials("orders", &secret))
        .await
        .unwrap()
}

fn credentials(id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: id.to_owned(),
        client_secret: secret.to_owned(),
    }
}

#[tokio::test]
async fn a_configured_client_gets_a_service_token_its_peers_verify() {
    let h = Harness::start().await;
    let issued = orders_token(&h).await;
    assert_eq!(
        (issued.token_type.as_str(), issued.expires_in),
        ("Bearer", 900)
    );
    // Verified as every other service verifies: against the published keys.
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: "shopmesh-users".into(),
        audience: "shopmesh".into(),
        keys: JwksSource::remote(h.url("/.well-known/jwks.json"), Duration::from_secs(1)),
        roles: RoleMapping::Platform,
    }]);
    let principal = verifier.verify(&issued.access_token).await.unwrap();
    assert_eq!((principal.user_id, principal.role), (0, Role::Service));
    h.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_client_is_a_401() {
    let h = Harness::start().await;
    let secret = service_client_secret(&h.stack, "orders");
    for (id, secret) in [
        ("orders", format!("{secret}0")),
        ("orders", secret[1..].to_owned()),
        ("payments", secret.clone()),
    ] {
        let refused = h
            .client
            .issue_service_token(&credentials(id, &secret))
            .await;
        assert_eq!(status(refused), 401, "{id}");
    }
    let empty = h.client.issue_service_token(&credentials("", "")).await;
    assert_eq!(status(empty), 400);
    h.stop().await;
}

#[tokio::test]
async fn a_service_token_reads_no_user() {
    let h = Harness::start().await;
    let token = AccessToken::new(orders_token(&h).await.access_token);
    // Refused by the contract's role check, before any rule about whose data it is.
    match h.client.get_user(&token, 1).await {
        Err(ClientError::Problem(p)) => {
            assert_eq!(p.status(), 403);
            assert!(
                p.detail
                    .as_deref()
                    .unwrap_or("")
                    .contains("needs the user role"),
                "{p:?}"
            );
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    h.stop().await;
}
