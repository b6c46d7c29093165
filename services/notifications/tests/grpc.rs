//! The gRPC API: status codes, reflection and health, cancellation, batching, connection age,
//! tokens and ownership.

mod harness;

use harness::*;

#[tokio::test]
async fn invalid_arguments_and_store_outage_map_to_grpc_codes() {
    let (target, _) = reroute(&mongo_url(), "x:1");
    let proxy = TcpProxy::start(&target).await;
    let (_, via_proxy) = reroute(&mongo_url(), &proxy.addr.to_string());
    let h = Harness::start(Options {
        mongo_url: Some(via_proxy),
        ..Options::default()
    })
    .await;
    let mut client = h.client().await;
    let code = |r: Result<tonic::Response<pb::GetNotificationsResponse>, tonic::Status>| {
        r.unwrap_err().code()
    };
    assert_eq!(
        code(
            client
                .get_notifications(pb::GetNotificationsRequest { order_id: 0 })
                .await
        ),
        Code::InvalidArgument
    );
    for req in [
        pb::ListUserNotificationsRequest {
            user_id: 0,
            page_size: 0,
            page_token: String::new(),
        },
        pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: 101,
            page_token: String::new(),
        },
        pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: -1,
            page_token: String::new(),
        },
        pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: 0,
            page_token: "garbage!".into(),
        },
    ] {
        let err = client
            .list_user_notifications(req.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}");
    }
    proxy.cut();
    assert_eq!(
        code(
            client
                .get_notifications(pb::GetNotificationsRequest { order_id: 1 })
                .await
        ),
        Code::Unavailable
    );
    proxy.restore();
    eventually("store back", Duration::from_secs(15), || {
        let mut client = client.clone();
        async move {
            client
                .get_notifications(pb::GetNotificationsRequest { order_id: 1 })
                .await
                .ok()
        }
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_service_and_health_follows_dependencies() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (mongo_target, _) = reroute(&mongo_url(), "x:1");
    let mongo_proxy = TcpProxy::start(&mongo_target).await;
    let (_, mongo_via) = reroute(&mongo_url(), &mongo_proxy.addr.to_string());
    let (amqp_target, _) = reroute(&amqp_url(), "x:1");
    let amqp_proxy = TcpProxy::start(&amqp_target).await;
    let (_, amqp_via) = reroute(&amqp_url(), &amqp_proxy.addr.to_string());
    let h = Harness::start(Options {
        mongo_url: Some(mongo_via),
        amqp_url: Some(amqp_via),
        ..Options::default()
    })
    .await;
    h.client().await;

    let channel = GrpcChannel::from_shared(h.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let ask = |m: MessageRequest| {
        tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        }])
    };
    let mut stream = reflection
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let services = match stream.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert!(
        services.contains(&shopmesh_notifications::SERVICE_NAME.to_owned()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_owned()),
        "{services:?}"
    );
    let mut stream = reflection
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            shopmesh_notifications::SERVICE_NAME.into(),
        )))
        .await
        .unwrap()
        .into_inner();
    match stream.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(f)) => {
            assert!(!f.file_descriptor_proto.is_empty())
        }
        other => panic!("describe failed: {other:?}"),
    }

    let mut health = HealthClient::new(channel);
    let status = |service: &str| {
        let mut health = health.clone();
        let service = service.to_owned();
        async move {
            health
                .check(HealthCheckRequest { service })
                .await
                .unwrap()
                .into_inner()
                .status
        }
    };
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    let wait_for = |want: i32, what: &'static str| {
        let status = &status;
        async move {
            eventually(what, Duration::from_secs(20), || async move {
                (status("").await == want
                    && status(shopmesh_notifications::SERVICE_NAME).await == want)
                    .then_some(())
            })
            .await
        }
    };
    wait_for(serving, "SERVING with both dependencies up").await;
    mongo_proxy.cut();
    wait_for(not_serving, "NOT_SERVING while MongoDB is away").await;
    mongo_proxy.restore();
    wait_for(serving, "SERVING after MongoDB returns").await;
    amqp_proxy.cut();
    wait_for(not_serving, "NOT_SERVING while RabbitMQ is away").await;
    amqp_proxy.restore();
    wait_for(serving, "SERVING after RabbitMQ returns").await;
    let _ = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    h.stop().await;
}

/// Callers that give up mid-call (client timeouts, a gateway's short downstream deadline) must
/// not wedge the service: tonic drops a cancelled handler, and a store operation dropped
/// mid-flight used to leave the MongoDB pool stuck, so every later call missed its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_do_not_wedge_the_store() {
    let h = Harness::start(Options::default()).await;
    // 500 calls cancelled mid-flight, 20 per connection: more resets on one HTTP/2 connection
    // trip the server's rapid-reset protection (GOAWAY), which is right but not under test.
    let mut cancelled = tokio::task::JoinSet::new();
    for round in 0..25 {
        let client = h.client().await;
        for i in 0..20 {
            let mut c = client.clone();
            cancelled.spawn(async move {
                let request = pb::GetNotificationsRequest {
                    order_id: 1 + round * 20 + i,
                };
                let _ = tokio::time::timeout(
                    Duration::from_micros(500 + 100 * i as u64),
                    c.get_notifications(request),
                )
                .await;
            });
        }
        while cancelled.join_next().await.is_some() {}
    }
    let client = h.client().await;
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let mut c = client.clone();
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            c.get_notifications(pb::GetNotificationsRequest { order_id: 7 }),
        )
        .await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "call {attempt} after the cancellations: {answer:?} in {:?}",
            started.elapsed()
        );
    }
    h.stop().await;
}

/// `GetNotificationsForOrders`: one call answers each requested order, in request order, and
/// a batch breaking the contract (empty, over 100, an id below 1) is INVALID_ARGUMENT.
#[tokio::test]
async fn notifications_for_many_orders_in_one_call() {
    let h = Harness::start(Options::default()).await;
    let events = [event(41, 1), event(42, 1), event(41, 1)];
    for e in &events {
        h.publish(e).await;
    }
    eventually("3 notifications", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    let mut client = h.client().await;
    let answer = client
        .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest {
            order_ids: vec![42, 43, 41, 42],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(i64, usize)> = answer
        .orders
        .iter()
        .map(|o| (o.order_id, o.notifications.len()))
        .collect();
    assert_eq!(got, vec![(42, 1), (43, 0), (41, 2)]);
    assert!(
        answer.orders[2]
            .notifications
            .iter()
            .all(|n| n.order_id == 41)
    );
    for bad in [vec![], vec![1, 0], vec![1; 101]] {
        let status = client
            .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest { order_ids: bad })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    h.stop().await;
}

/// A connection to the gRPC port that never says anything (nor anything useful) is closed at
/// the maximum connection age rather than held forever, while real calls keep working.
#[tokio::test]
async fn silent_grpc_connections_are_closed_at_their_maximum_age() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start(Options {
        grpc_max_connection_age: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let addr = h.grpc_url.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut client = h.client().await;
    client
        .get_notifications(pb::GetNotificationsRequest { order_id: 1 })
        .await
        .unwrap();
    for stream in &mut silent {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // the server's SETTINGS and GOAWAY frames
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a silent connection outlived its maximum age"
        );
    }
    h.stop().await;
}

/// Every method needs a token (the contract's `(shopmesh.auth.v1.access)`), checked before
/// the method runs; a user reads only notifications about their own orders, an admin all;
/// health and reflection stay open.
#[tokio::test]
async fn grpc_callers_need_a_token_and_reach_only_their_own_notifications() {
    let h = Harness::start(Options::default()).await;
    for (order_id, user_id) in [(10, 1), (11, 2)] {
        h.mongo
            .insert_if_absent(&NewNotification {
                event_id: Uuid::new_v4().to_string(),
                order_id,
                user_id,
                message: format!("order {order_id}"),
            })
            .await
            .unwrap();
    }
    let alice = token(&h.stack, 1, Role::User);
    let mut as_alice = h.client_as(&alice).await;
    let own = as_alice
        .get_notifications(pb::GetNotificationsRequest { order_id: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.notifications.len(), 1);
    // Bob's order reads as one without notifications, like a missing one: ids cannot be probed.
    let bobs = as_alice
        .get_notifications(pb::GetNotificationsRequest { order_id: 11 })
        .await
        .unwrap()
        .into_inner();
    assert!(bobs.notifications.is_empty());
    let mixed = as_alice
        .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest {
            order_ids: vec![10, 11],
        })
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<usize> = mixed.orders.iter().map(|o| o.notifications.len()).collect();
    assert_eq!(counts, [1, 0], "only Alice's own");
    let denied = [as_alice
        .list_user_notifications(pb::ListUserNotificationsRequest {
            user_id: 2,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .map(|_| ())];
    for (i, outcome) in denied.into_iter().enumerate() {
        assert_eq!(
            outcome.unwrap_err().code(),
            Code::PermissionDenied,
            "call {i}"
        );
    }
    let mut as_admin = h.client().await;
    let both = as_admin
        .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest {
            order_ids: vec![10, 11],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        both.orders
            .iter()
            .map(|o| o.notifications.len())
            .sum::<usize>(),
        2
    );

    let channel = GrpcChannel::from_shared(h.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anonymous = NotificationServiceClient::new(channel.clone());
    let status = anonymous
        .get_notifications(pb::GetNotificationsRequest { order_id: 10 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("bearer token"), "{status:?}");
    let forged = AccessToken::new("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.");
    let mut forger =
        NotificationServiceClient::with_interceptor(channel.clone(), GrpcBearer(forged));
    let status = forger
        .list_user_notifications(pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok(),
        "health needs no token"
    );
    h.stop().await;
}

/// An admin counts the dead-lettered events and moves them back over gRPC, as the `redrive`
/// command does; a shopper may do neither.
#[tokio::test]
async fn an_admin_counts_and_redrives_dead_letters_and_a_shopper_may_not() {
    use shopmesh_proto::shopmesh::notification::v1::{
        GetDeadLettersRequest, RedriveDeadLettersRequest,
    };
    let h = Harness::start(Options::default()).await;
    h.dead_letter(
        &event(801, 1).to_json(),
        "store failed after 5 retries: timeout",
    )
    .await;
    h.dead_letter(b"{not json", "expected value at line 1")
        .await;
    let mut admin = h.client().await;
    let count = admin.get_dead_letters(GetDeadLettersRequest {}).await;
    assert_eq!(count.unwrap().into_inner().count, 2);

    let mut shopper = h.client_as(&token(&h.stack, 1, Role::User)).await;
    let refused = shopper.get_dead_letters(GetDeadLettersRequest {}).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let all = RedriveDeadLettersRequest {
        reason: String::new(),
    };
    let refused = shopper.redrive_dead_letters(all.clone()).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);

    let report = admin.redrive_dead_letters(all).await.unwrap().into_inner();
    assert_eq!((report.moved, report.kept), (1, 1), "poison stays");
    eventually(
        "the redriven event stored",
        Duration::from_secs(20),
        || async {
            let mut client = h.client().await;
            (!for_order(&mut client, 801).await.is_empty()).then_some(())
        },
    )
    .await;
    let count = admin.get_dead_letters(GetDeadLettersRequest {}).await;
    assert_eq!(count.unwrap().into_inner().count, 1);
    h.stop().await;
}
