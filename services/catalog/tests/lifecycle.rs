//! The reservation lifecycle against a reference model: random sequences of reservations,
//! commits, releases, expiries and stock adjustments run on the real store (MariaDB) and on a
//! model in memory, one step at a time; after every step both must agree on the outcome, on
//! every product's stock and on every reservation's status. Shrinking finds the shortest
//! sequence that disagrees. Its negative control runs the same comparison against a model with
//! one rule wrong, and must find the disagreement.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shopmesh_catalog::error::CatalogError;
use shopmesh_catalog::store::{CatalogStore, MIGRATOR};
use shopmesh_openapi::catalog::{Money, ProductInput, ReservationLine, ReservationStatus};
use shopmesh_testkit::{Service, test_stack, unique};

const PRODUCTS: usize = 3;
const ORDERS: u8 = 6;

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        order: u8,
        lines: Vec<(usize, i32)>,
    },
    Commit(u8),
    Release(u8),
    /// The reservation's time passes, then the sweeper runs.
    Expire(u8),
    Adjust(usize, i32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..ORDERS, prop::collection::vec((0..PRODUCTS, 1..4i32), 1..3))
            .prop_map(|(order, lines)| Op::Reserve { order, lines }),
        2 => (0..ORDERS).prop_map(Op::Commit),
        2 => (0..ORDERS).prop_map(Op::Release),
        1 => (0..ORDERS).prop_map(Op::Expire),
        2 => (0..PRODUCTS, -3..6i32).prop_map(|(p, d)| Op::Adjust(p, d)),
    ]
}

/// What a step answered, as far as the contract distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Conflict,
    NotFound,
}

/// The rules, written plainly.
#[derive(Debug, Clone, Default)]
struct Model {
    /// (on hand, reserved, sold) per product.
    stock: [(i64, i64, i64); PRODUCTS],
    reservations: HashMap<u8, (Vec<(usize, i64)>, ReservationStatus)>,
    /// The negative control's wrong rule: a committed reservation may be released.
    releases_committed: bool,
}

fn merged(lines: &[(usize, i32)]) -> Vec<(usize, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for &(p, q) in lines {
        *m.entry(p).or_insert(0) += i64::from(q);
    }
    m.into_iter().collect()
}

impl Model {
    fn apply(&mut self, op: &Op) -> Outcome {
        use ReservationStatus::*;
        match op {
            Op::Reserve { order, lines } => {
                let lines = merged(lines);
                if let Some((held, _)) = self.reservations.get(order) {
                    return if *held == lines {
                        Outcome::Done
                    } else {
                        Outcome::Conflict
                    };
                }
                if lines
                    .iter()
                    .any(|&(p, q)| self.stock[p].0 - self.stock[p].1 < q)
                {
                    return Outcome::Conflict;
                }
                for &(p, q) in &lines {
                    self.stock[p].1 += q;
                }
                self.reservations.insert(*order, (lines, Reserved));
                Outcome::Done
            }
            Op::Commit(order) => match self.reservations.get_mut(order) {
                None => Outcome::NotFound,
                Some((lines, status @ Reserved)) => {
                    for &(p, q) in lines.iter() {
                        self.stock[p].0 -= q;
                        self.stock[p].1 -= q;
                        self.stock[p].2 += q;
                    }
                    *status = Committed;
                    Outcome::Done
                }
                Some((_, Committed)) => Outcome::Done,
                Some(_) => Outcome::Conflict,
            },
            Op::Release(order) => match self.reservations.get_mut(order) {
                None => Outcome::NotFound,
                Some((lines, status @ Reserved)) => {
                    for &(p, q) in lines.iter() {
                        self.stock[p].1 -= q;
                    }
                    *status = Released;
                    Outcome::Done
                }
                Some((_, Committed)) if self.releases_committed => Outcome::Done,
                Some((_, Committed)) => Outcome::Conflict,
                Some(_) => Outcome::Done,
            },
            Op::Expire(order) => {
                if let Some((lines, status @ Reserved)) = self.reservations.get_mut(order) {
                    for &(p, q) in lines.iter() {
                        self.stock[p].1 -= q;
                    }
                    *status = Expired;
                }
                Outcome::Done
            }
            Op::Adjust(p, delta) => {
                let on_hand = self.stock[*p].0 + i64::from(*delta);
                if on_hand < self.stock[*p].1 {
                    return Outcome::Conflict;
                }
                self.stock[*p].0 = on_hand;
                Outcome::Done
            }
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One database for the whole run; each case works on products and orders of its own.
fn store() -> &'static CatalogStore {
    static STORE: OnceLock<CatalogStore> = OnceLock::new();
    STORE.get_or_init(|| {
        runtime().block_on(async {
            let stack = test_stack();
            let url = stack.database_url(Service::Catalog).unwrap().unwrap();
            let store = CatalogStore::connect_lazy(
                &url,
                4,
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
            shopmesh_common::db::create_and_migrate(store.pool(), &url, &MIGRATOR)
                .await
                .unwrap();
            store
        })
    })
}

fn outcome<T>(result: Result<T, CatalogError>) -> Result<Outcome, TestCaseError> {
    match result {
        Ok(_) => Ok(Outcome::Done),
        Err(e) if e.status() == 409 => Ok(Outcome::Conflict),
        Err(e) if e.status() == 404 => Ok(Outcome::NotFound),
        Err(e) => Err(TestCaseError::fail(format!("the store failed: {e}"))),
    }
}

/// Runs `ops` on the store and on `model`, comparing after every step.
fn check(ops: &[Op], mut model: Model) -> Result<(), TestCaseError> {
    static CASE: AtomicI64 = AtomicI64::new(1);
    let base = CASE.fetch_add(1, Ordering::Relaxed) * 100;
    let store = store();
    runtime().block_on(async {
        let mut products = Vec::new();
        for _ in 0..PRODUCTS {
            let input = ProductInput {
                sku: unique("LC"),
                name: "lifecycle".into(),
                description: None,
                price: Money { amount_minor: 1, currency: "EUR".into() },
                active: Some(true),
                image_url: None,
            };
            products.push(store.create(&input, None).await.map_err(|e| TestCaseError::fail(e.to_string()))?.id);
        }
        for (step, op) in ops.iter().enumerate() {
            let order = |o: &u8| base + i64::from(*o);
            let got = match op {
                Op::Reserve { order: o, lines } => {
                    let lines: Vec<ReservationLine> = lines
                        .iter()
                        .map(|&(p, quantity)| ReservationLine { product_id: products[p], quantity })
                        .collect();
                    outcome(store.reserve(order(o), &lines).await)?
                }
                Op::Commit(o) => outcome(store.commit(order(o)).await)?,
                Op::Release(o) => outcome(store.release(order(o)).await)?,
                Op::Expire(o) => {
                    sqlx::query("UPDATE reservations SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE order_id = ?")
                        .bind(order(o))
                        .execute(store.pool())
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    outcome(store.expire_due(100).await)?
                }
                Op::Adjust(p, delta) => outcome(store.adjust(products[*p], *delta, "lifecycle", None).await)?,
            };
            let expected = model.apply(op);
            prop_assert_eq!(got, expected, "step {}: {:?}", step, op);
            for (i, &id) in products.iter().enumerate() {
                let stock = store.get(id).await.map_err(|e| TestCaseError::fail(e.to_string()))?.stock;
                prop_assert_eq!(
                    (stock.on_hand, stock.reserved, stock.sold),
                    model.stock[i],
                    "product {} after step {}: {:?}",
                    i,
                    step,
                    op
                );
                prop_assert_eq!(stock.available, stock.on_hand - stock.reserved);
            }
            for (o, (_, status)) in &model.reservations {
                let r = store.reservation(order(o)).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(r.status, *status, "order {} after step {}", o, step);
            }
        }
        Ok(())
    })
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 48,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn the_store_follows_the_reservation_model() {
    let result = runner().run(&prop::collection::vec(op(), 1..25), |ops| {
        check(&ops, Model::default())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn negative_control_a_model_with_one_rule_wrong_is_caught() {
    let wrong = Model {
        releases_committed: true,
        ..Model::default()
    };
    // Sequences that reach the wrong rule: stock, a reservation, its commit, its release.
    let reaching = (1..5i32, 1..3i32).prop_map(|(units, q)| {
        vec![
            Op::Adjust(0, units + q),
            Op::Reserve {
                order: 0,
                lines: vec![(0, q)],
            },
            Op::Commit(0),
            Op::Release(0),
        ]
    });
    let result = runner().run(&reaching, |ops| check(&ops, wrong.clone()));
    let failure = result.expect_err("the comparison found nothing wrong with a wrong model");
    println!("negative control caught: {failure}");
}
