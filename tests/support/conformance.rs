//! The storage conformance suite: written once, run against every adapter (see
//! `conformance_suite!`). Each case works in partitions of its own, so cases can share a table
//! and run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eshtarek_core::store::{
    AttrValue, CancelReason, Condition, Item, Key, Query, SortKeyCondition, Store, StoreError,
    StoreExt, UpdateAction, WriteOp, GSI1PK, GSI1SK, TTL,
};
use futures::future::join_all;
use rust_decimal::Decimal;

/// A partition key no other case (or run) uses.
fn ns(case: &str) -> String {
    format!("CONF#{case}#{}", uuid::Uuid::new_v4().simple())
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

pub async fn put_get_roundtrip(store: Arc<dyn Store>) {
    let pk = ns("roundtrip");
    let nested = AttrValue::M(BTreeMap::from([
        (
            "list".to_owned(),
            AttrValue::L(vec![
                AttrValue::from(1),
                AttrValue::from("two"),
                AttrValue::Null,
            ]),
        ),
        ("flag".to_owned(), AttrValue::Bool(false)),
    ]));
    let item = Item::new(Key::new(&pk, "A"))
        .with("name", "Zoë — 名前")
        .with("price", dec("30.10"))
        .with("tiny", dec("0.0000000001"))
        .with("big", dec("79228162514264337593543950335"))
        .with("negative", dec("-12.5"))
        .with("active", true)
        .with("blob", AttrValue::B(vec![0, 1, 2, 255]))
        .with("nothing", AttrValue::Null)
        .with("nested", nested)
        .with_ttl(4_102_444_800);
    store.put(item.clone(), None).await.unwrap();
    let got = store.get(&item.key).await.unwrap().expect("item stored");
    assert_eq!(got.key, item.key);
    assert_eq!(got.attrs, item.attrs, "every attribute comes back equal");
    assert_eq!(got.ttl(), Some(4_102_444_800));
    assert_eq!(store.get(&Key::new(&pk, "missing")).await.unwrap(), None);
}

/// Several items in one call, in the order asked, absent ones as `None`; a bad batch (empty,
/// a key twice, too many) refused before any I/O.
pub async fn get_many_reads_items_in_order(store: Arc<dyn Store>) {
    let pk = ns("many");
    for (sk, n) in [("A", 1), ("B", 2), ("C", 3)] {
        store
            .put(Item::new(Key::new(&pk, sk)).with("n", n), None)
            .await
            .unwrap();
    }
    let keys = [
        Key::new(&pk, "C"),
        Key::new(&pk, "MISSING"),
        Key::new(&pk, "A"),
        Key::new(ns("elsewhere"), "B"),
    ];
    let items = store.get_many(&keys).await.unwrap();
    let ns_of = |i: &Option<Item>| i.as_ref().and_then(|item| item.i64("n"));
    assert_eq!(
        items.iter().map(ns_of).collect::<Vec<_>>(),
        vec![Some(3), None, Some(1), None]
    );
    assert_eq!(items[0].as_ref().unwrap().key, keys[0]);
    for bad in [
        Vec::new(),
        vec![Key::new(&pk, "A"), Key::new(&pk, "A")],
        (0..101).map(|i| Key::new(&pk, format!("K{i}"))).collect(),
    ] {
        assert!(matches!(
            store.get_many(&bad).await,
            Err(StoreError::Invalid(_))
        ));
    }
    // A full batch of 100 comes back whole, in order.
    let hundred: Vec<Key> = (0..100)
        .map(|i| Key::new(&pk, format!("K{i:03}")))
        .collect();
    let answers = store.get_many(&hundred).await.unwrap();
    assert_eq!(answers.len(), 100);
    assert!(answers.iter().all(Option::is_none));
}

pub async fn conditional_put_refuses_existing_item(store: Arc<dyn Store>) {
    let key = Key::new(ns("cput"), "ONE");
    let first = Item::new(key.clone()).with("v", 1);
    store
        .put(first.clone(), Some(Condition::ItemNotExists))
        .await
        .unwrap();
    let second = Item::new(key.clone()).with("v", 2);
    let err = store
        .put(second, Some(Condition::ItemNotExists))
        .await
        .unwrap_err();
    match err {
        StoreError::ConditionFailed { current } => {
            assert_eq!(current.map(|c| c.attrs), Some(first.attrs.clone()));
        }
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().decimal("v"),
        Some(dec("1"))
    );
}

pub async fn condition_vocabulary(store: Arc<dyn Store>) {
    let key = Key::new(ns("conds"), "ITEM");
    store
        .put(
            Item::new(key.clone())
                .with("n", 10)
                .with("s", "banana")
                .with("flag", true),
            None,
        )
        .await
        .unwrap();
    let cases: Vec<(Condition, bool)> = vec![
        (Condition::ItemExists, true),
        (Condition::ItemNotExists, false),
        (Condition::exists("n"), true),
        (Condition::exists("missing"), false),
        (Condition::not_exists("missing"), true),
        (Condition::eq("n", 10), true),
        (Condition::eq("n", 11), false),
        (Condition::eq("n", "10"), false),
        (Condition::ne("n", 11), true),
        (Condition::ne("n", 10), false),
        (Condition::ne("missing", 1), true),
        (Condition::lt("n", 11), true),
        (Condition::lt("n", 10), false),
        (Condition::le("n", 10), true),
        (Condition::gt("n", dec("9.5")), true),
        (Condition::ge("n", 11), false),
        (Condition::lt("s", "cherry"), true),
        (Condition::gt("s", "cherry"), false),
        (Condition::lt("missing", 5), false),
        // Not here: comparing across types (`s < 5`). DynamoDB answers false; moto 5.2.5
        // fails with a 500. Services never compare across types; the in-process evaluation is
        // covered by a unit test in shared/src/store/expr.rs.
        (Condition::eq("flag", true), true),
        (
            Condition::And(vec![Condition::eq("n", 10), Condition::eq("s", "banana")]),
            true,
        ),
        (
            Condition::And(vec![Condition::eq("n", 10), Condition::eq("s", "apple")]),
            false,
        ),
        (
            Condition::Or(vec![Condition::eq("n", 99), Condition::eq("s", "banana")]),
            true,
        ),
        (
            Condition::Or(vec![
                Condition::eq("n", 99),
                Condition::And(vec![Condition::exists("missing"), Condition::eq("n", 10)]),
            ]),
            false,
        ),
        // Groups of one, nested (a rate limit's condition over one window): DynamoDB refuses
        // doubled parentheses, so a group of one must render as its member.
        (
            Condition::And(vec![Condition::And(vec![
                Condition::ge("n", 10),
                Condition::le("n", 10),
            ])]),
            true,
        ),
        (
            Condition::And(vec![Condition::Or(vec![Condition::And(vec![
                Condition::eq("n", 10),
            ])])]),
            true,
        ),
    ];
    for (i, (condition, expected)) in cases.into_iter().enumerate() {
        let outcome = store
            .update(
                key.clone(),
                vec![UpdateAction::set("last_case", i as i64)],
                Some(condition.clone()),
            )
            .await;
        match (expected, &outcome) {
            (true, Ok(_)) | (false, Err(StoreError::ConditionFailed { .. })) => {}
            _ => panic!("case {i} {condition:?}: expected {expected}, got {outcome:?}"),
        }
    }
    // A missing item: only ItemNotExists and attribute_not_exists hold.
    let missing = Key::new(ns("conds"), "NONE");
    let err = store
        .update(
            missing.clone(),
            vec![UpdateAction::add("n", 1)],
            Some(Condition::ItemExists),
        )
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::ConditionFailed { current: None });
    assert_eq!(
        store.get(&missing).await.unwrap(),
        None,
        "a failed update writes nothing"
    );
}

pub async fn update_sets_adds_and_removes(store: Arc<dyn Store>) {
    let key = Key::new(ns("update"), "COUNTER");
    // An update of a missing item creates it; ADD starts from zero.
    let created = store
        .update(
            key.clone(),
            vec![
                UpdateAction::add("used", 5),
                UpdateAction::set("metric", "api_calls"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(created.decimal("used"), Some(dec("5")));
    assert_eq!(created.str("metric"), Some("api_calls"));
    let updated = store
        .update(
            key.clone(),
            vec![
                UpdateAction::add("used", dec("2.5")),
                UpdateAction::remove("metric"),
                UpdateAction::set("note", "x"),
            ],
            Some(Condition::ItemExists),
        )
        .await
        .unwrap();
    assert_eq!(updated.decimal("used"), Some(dec("7.5")));
    assert_eq!(updated.get("metric"), None);
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.attrs, updated.attrs,
        "update returns the item as stored"
    );
    // ADD to a string is refused, and changes nothing.
    let err = store
        .update(key.clone(), vec![UpdateAction::add("note", 1)], None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "got {err:?}");
    assert_eq!(store.get(&key).await.unwrap().unwrap().attrs, stored.attrs);
}

pub async fn conditional_delete(store: Arc<dyn Store>) {
    let key = Key::new(ns("delete"), "ITEM");
    store
        .put(Item::new(key.clone()).with("state", "open"), None)
        .await
        .unwrap();
    let err = store
        .delete(key.clone(), Some(Condition::eq("state", "closed")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { current: Some(_) }),
        "got {err:?}"
    );
    assert!(store.get(&key).await.unwrap().is_some());
    store
        .delete(key.clone(), Some(Condition::eq("state", "open")))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
}

/// 64 concurrent conditional increments with a limit of 50: exactly 50 succeed, 50 is stored.
pub async fn conditional_increment_race(store: Arc<dyn Store>) {
    let key = Key::new(ns("race"), "COUNTER");
    let limit = 50;
    let attempts = (0..64).map(|_| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move {
            store
                .update(
                    key,
                    vec![UpdateAction::add("count", 1)],
                    Some(Condition::Or(vec![
                        Condition::not_exists("count"),
                        Condition::lt("count", limit),
                    ])),
                )
                .await
        })
    });
    let mut successes = 0;
    for outcome in join_all(attempts).await {
        match outcome.expect("task") {
            Ok(_) => successes += 1,
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(successes, limit, "exactly the limit succeeds");
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!(stored.decimal("count"), Some(Decimal::from(limit)));
}

/// A transaction whose last condition fails writes nothing and says which one failed.
pub async fn transaction_cancellation_writes_nothing(store: Arc<dyn Store>) {
    let pk = ns("tx");
    let a = Key::new(&pk, "A");
    let b = Key::new(&pk, "B");
    let c = Key::new(&pk, "C");
    store
        .put(Item::new(b.clone()).with("n", 1), None)
        .await
        .unwrap();
    store
        .put(Item::new(c.clone()).with("open", false), None)
        .await
        .unwrap();
    let ops = vec![
        WriteOp::Put {
            item: Item::new(a.clone()).with("v", "new"),
            condition: Some(Condition::ItemNotExists),
        },
        WriteOp::Update {
            key: b.clone(),
            actions: vec![UpdateAction::add("n", 1)],
            condition: Some(Condition::ItemExists),
        },
        WriteOp::Check {
            key: c.clone(),
            condition: Condition::eq("open", true),
        },
    ];
    let err = store.transact(ops.clone()).await.unwrap_err();
    assert_eq!(err.failed_condition_index(), Some(2), "got {err:?}");
    match &err {
        StoreError::TransactionCancelled { reasons } => {
            assert_eq!(reasons.len(), 3);
            assert_eq!(reasons[0], CancelReason::None);
            assert_eq!(reasons[1], CancelReason::None);
            assert!(
                matches!(&reasons[2], CancelReason::ConditionFailed { current: Some(c) } if c.get("open") == Some(&AttrValue::Bool(false)))
            );
        }
        other => panic!("expected TransactionCancelled, got {other:?}"),
    }
    assert_eq!(store.get(&a).await.unwrap(), None, "the put did not land");
    assert_eq!(
        store.get(&b).await.unwrap().unwrap().decimal("n"),
        Some(dec("1"))
    );

    // Open the gate: now all of it lands at once.
    store
        .put(Item::new(c.clone()).with("open", true), None)
        .await
        .unwrap();
    store.transact(ops).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().unwrap().str("v"), Some("new"));
    assert_eq!(
        store.get(&b).await.unwrap().unwrap().decimal("n"),
        Some(dec("2"))
    );

    // A delete inside a transaction, conditioned on another item's state.
    store
        .transact(vec![
            WriteOp::Delete {
                key: a.clone(),
                condition: Some(Condition::ItemExists),
            },
            WriteOp::Check {
                key: b.clone(),
                condition: Condition::eq("n", 2),
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.get(&a).await.unwrap(), None);
}

/// `transact_returning` answers with the chosen operation's item as written, and with nothing
/// when the transaction is cancelled.
pub async fn transaction_returns_a_post_image(store: Arc<dyn Store>) {
    let pk = ns("returning");
    let counter = Key::new(&pk, "COUNTER");
    let add = |n: i64, max: i64| {
        vec![
            WriteOp::Put {
                item: Item::new(Key::new(&pk, format!("CLAIM#{n}#{max}"))),
                condition: Some(Condition::ItemNotExists),
            },
            WriteOp::Update {
                key: counter.clone(),
                actions: vec![UpdateAction::add("used", Decimal::from(n))],
                condition: Some(Condition::Or(vec![
                    Condition::not_exists("used"),
                    Condition::le("used", max - n),
                ])),
            },
        ]
    };
    let first = store.transact_returning(add(3, 10), 1).await.unwrap();
    assert_eq!(first.unwrap().i64("used"), Some(3));
    let second = store.transact_returning(add(4, 10), 1).await.unwrap();
    assert_eq!(second.unwrap().i64("used"), Some(7));
    // The claim's post-image is the claim itself.
    let claim = store
        .transact_returning(add(1, 10), 0)
        .await
        .unwrap()
        .unwrap();
    assert!(claim.key.sk.starts_with("CLAIM#1#"));
    let err = store.transact_returning(add(5, 10), 1).await.unwrap_err();
    assert_eq!(err.failed_condition_index(), Some(1));
    assert_eq!(
        store.get(&counter).await.unwrap().unwrap().i64("used"),
        Some(8)
    );
    assert!(matches!(
        store.transact_returning(add(1, 100), 2).await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn transaction_refuses_bad_shapes(store: Arc<dyn Store>) {
    let key = Key::new(ns("txshape"), "A");
    let twice = vec![
        WriteOp::Put {
            item: Item::new(key.clone()),
            condition: None,
        },
        WriteOp::Update {
            key: key.clone(),
            actions: vec![UpdateAction::add("n", 1)],
            condition: None,
        },
    ];
    assert!(matches!(
        store.transact(twice).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.transact(vec![]).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get(&key).await.unwrap(), None);
}

async fn collect_pages(store: &Arc<dyn Store>, query: Query) -> (Vec<Item>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor = None;
    loop {
        let page = store.query(&query.clone().after(cursor)).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= query.limit as usize);
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 1000, "pagination does not end");
    }
    (items, pages)
}

/// Pagination returns every item exactly once, in order, both ways; the last page says so.
pub async fn table_pagination(store: Arc<dyn Store>) {
    let pk = ns("pages");
    for i in 0..25 {
        store
            .put(
                Item::new(Key::new(&pk, format!("ITEM#{i:03}"))).with("i", i as i64),
                None,
            )
            .await
            .unwrap();
    }
    // Items of another partition never show up.
    store
        .put(Item::new(Key::new(format!("{pk}X"), "ITEM#000")), None)
        .await
        .unwrap();
    let expected: Vec<String> = (0..25).map(|i| format!("ITEM#{i:03}")).collect();
    let (items, pages) = collect_pages(&store, Query::table(&pk).limit(7)).await;
    let sks: Vec<String> = items.iter().map(|i| i.key.sk.clone()).collect();
    assert_eq!(sks, expected);
    assert_eq!(pages, 4);
    let (items, _) = collect_pages(&store, Query::table(&pk).limit(5).descending()).await;
    let sks: Vec<String> = items.iter().map(|i| i.key.sk.clone()).collect();
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(sks, reversed);
    // Exactly a page's worth: one page, no cursor.
    let page = store.query(&Query::table(&pk).limit(25)).await.unwrap();
    assert_eq!(page.items.len(), 25);
    assert_eq!(page.next_cursor, None);
}

/// Sort-key conditions on the table: begins_with, between, <, <=, >, >=, =.
pub async fn sort_key_conditions(store: Arc<dyn Store>) {
    let pk = ns("skc");
    for sk in [
        "ORDER#1",
        "ORDER#10",
        "ORDER#2",
        "ORDER$",
        "ORDEQ",
        "ORD",
        "PAYMENT#1",
    ] {
        store.put(Item::new(Key::new(&pk, sk)), None).await.unwrap();
    }
    let sks = |page: eshtarek_core::store::Page| -> Vec<String> {
        page.items.into_iter().map(|i| i.key.sk).collect()
    };
    let run = |condition: SortKeyCondition| {
        let store = store.clone();
        let pk = pk.clone();
        async move { sks(store.query(&Query::table(pk).sk(condition)).await.unwrap()) }
    };
    assert_eq!(
        run(SortKeyCondition::BeginsWith("ORDER#".into())).await,
        ["ORDER#1", "ORDER#10", "ORDER#2"]
    );
    assert_eq!(
        run(SortKeyCondition::BeginsWith("ORDER#1".into())).await,
        ["ORDER#1", "ORDER#10"]
    );
    assert_eq!(
        run(SortKeyCondition::Between(
            "ORDER#10".into(),
            "ORDER$".into()
        ))
        .await,
        ["ORDER#10", "ORDER#2", "ORDER$"]
    );
    assert_eq!(run(SortKeyCondition::Lt("ORDEQ".into())).await, ["ORD"]);
    assert_eq!(
        run(SortKeyCondition::Le("ORDEQ".into())).await,
        ["ORD", "ORDEQ"]
    );
    assert_eq!(
        run(SortKeyCondition::Gt("ORDER$".into())).await,
        ["PAYMENT#1"]
    );
    assert_eq!(
        run(SortKeyCondition::Ge("ORDER$".into())).await,
        ["ORDER$", "PAYMENT#1"]
    );
    assert_eq!(
        run(SortKeyCondition::Eq("ORDER#2".into())).await,
        ["ORDER#2"]
    );
}

/// GSI1: begins_with, paging over duplicate index sort keys across partitions, exactly once;
/// an item leaves the index when its GSI keys are removed.
pub async fn gsi1_queries(store: Arc<dyn Store>) {
    let gpk = ns("gsi");
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let pk = format!("{gpk}#P{}", i % 3);
        let sk = format!("S#{i:02}");
        // Only four distinct index sort keys: order among equals comes from the table keys.
        let gsk = format!("DUE#2026-01-0{}", i % 4);
        store
            .put(Item::new(Key::new(&pk, &sk)).with_gsi1(&gpk, &gsk), None)
            .await
            .unwrap();
        expected.insert((pk, sk));
    }
    store
        .put(
            Item::new(Key::new(format!("{gpk}#P0"), "NOT-INDEXED")).with("x", 1),
            None,
        )
        .await
        .unwrap();
    for descending in [false, true] {
        let mut query = Query::gsi1(&gpk).limit(3);
        query.descending = descending;
        let (items, _) = collect_pages(&store, query).await;
        let seen: Vec<(String, String)> = items
            .iter()
            .map(|i| (i.key.pk.clone(), i.key.sk.clone()))
            .collect();
        let unique: BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!(seen.len(), unique.len(), "no item twice");
        assert_eq!(unique, expected, "every indexed item once");
        let gsks: Vec<&str> = items.iter().map(|i| i.gsi1().unwrap().1).collect();
        let mut sorted = gsks.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(gsks, sorted, "ordered by the index sort key");
    }
    let due = store
        .query(&Query::gsi1(&gpk).begins_with("DUE#2026-01-01").limit(100))
        .await
        .unwrap();
    assert_eq!(due.items.len(), 5);
    let early = store
        .query(
            &Query::gsi1(&gpk)
                .sk(SortKeyCondition::Le("DUE#2026-01-01".into()))
                .limit(100),
        )
        .await
        .unwrap();
    assert_eq!(early.items.len(), 10);

    // Removing the index keys takes the item out of the index.
    let first = due.items[0].key.clone();
    store
        .update(
            first.clone(),
            vec![UpdateAction::remove(GSI1PK), UpdateAction::remove("GSI1SK")],
            None,
        )
        .await
        .unwrap();
    let due = store
        .query(&Query::gsi1(&gpk).begins_with("DUE#2026-01-01").limit(100))
        .await
        .unwrap();
    assert_eq!(due.items.len(), 4);
    assert!(due.items.iter().all(|i| i.key != first));
}

/// An item's index entry follows every update: one that only adds (the index keys as they
/// were) keeps it where it is, with the new attributes; one that changes an index key or the
/// TTL moves it.
pub async fn index_entries_follow_updates(store: Arc<dyn Store>) {
    let (january, february) = (ns("idx-jan"), ns("idx-feb"));
    let key = Key::new(ns("counter"), "P#1");
    let indexed = |gpk: &str| {
        vec![
            UpdateAction::add("used", 1),
            UpdateAction::set(GSI1PK, gpk),
            UpdateAction::set(GSI1SK, "tenant-a"),
        ]
    };
    let listed = |gpk: String| {
        let store = store.clone();
        async move {
            let page = store.query(&Query::gsi1(gpk).limit(10)).await.unwrap();
            page.items
                .iter()
                .map(|i| (i.key.clone(), i.i64("used")))
                .collect::<Vec<_>>()
        }
    };
    for _ in 0..3 {
        store
            .update(key.clone(), indexed(&january), None)
            .await
            .unwrap();
    }
    assert_eq!(listed(january.clone()).await, vec![(key.clone(), Some(3))]);
    store
        .update(key.clone(), indexed(&february), None)
        .await
        .unwrap();
    assert_eq!(listed(january.clone()).await, vec![]);
    assert_eq!(listed(february.clone()).await, vec![(key.clone(), Some(4))]);
    store
        .update(key.clone(), vec![UpdateAction::add("used", 1)], None)
        .await
        .unwrap();
    assert_eq!(listed(february.clone()).await, vec![(key.clone(), Some(5))]);
    // A TTL set, then the index keys removed: out of the index, the item kept.
    let ttl = chrono::Utc::now().timestamp() + 3600;
    store
        .update(key.clone(), vec![UpdateAction::set(TTL, ttl)], None)
        .await
        .unwrap();
    assert_eq!(listed(february.clone()).await, vec![(key.clone(), Some(5))]);
    store
        .update(
            key.clone(),
            vec![UpdateAction::remove(GSI1PK), UpdateAction::remove(GSI1SK)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed(february).await, vec![]);
    let item = store.get(&key).await.unwrap().unwrap();
    assert_eq!((item.i64("used"), item.ttl()), (Some(5), Some(ttl)));
}

/// Cursors are bound to their query's partition.
pub async fn cursors_are_bound_to_their_partition(store: Arc<dyn Store>) {
    let pk = ns("cursor");
    for i in 0..3 {
        store
            .put(Item::new(Key::new(&pk, format!("I#{i}"))), None)
            .await
            .unwrap();
    }
    let page = store.query(&Query::table(&pk).limit(1)).await.unwrap();
    let cursor = page.next_cursor.expect("more pages");
    let other = store
        .query(&Query::table(format!("{pk}-other")).after(Some(cursor.clone())))
        .await;
    assert_eq!(other.unwrap_err(), StoreError::InvalidCursor);
    let on_gsi = store.query(&Query::gsi1(&pk).after(Some(cursor))).await;
    assert_eq!(on_gsi.unwrap_err(), StoreError::InvalidCursor);
    let garbage = store
        .query(&Query::table(&pk).after(Some("not a cursor".into())))
        .await;
    assert_eq!(garbage.unwrap_err(), StoreError::InvalidCursor);
}

/// Requests the port cannot express are refused alike, and write nothing.
pub async fn invalid_requests_are_refused(store: Arc<dyn Store>) {
    let key = Key::new(ns("invalid"), "A");
    let reserved = Item::new(key.clone()).with("PK", "spoof");
    assert!(matches!(
        store.put(reserved, None).await,
        Err(StoreError::Invalid(_))
    ));
    let bad_gsi = Item::new(key.clone()).with(GSI1PK, 5);
    assert!(matches!(
        store.put(bad_gsi, None).await,
        Err(StoreError::Invalid(_))
    ));
    let empty_and = store
        .put(Item::new(key.clone()), Some(Condition::And(vec![])))
        .await;
    assert!(matches!(empty_and, Err(StoreError::Invalid(_))));
    assert!(matches!(
        store.query(&Query::table(&key.pk).limit(0)).await,
        Err(StoreError::Invalid(_))
    ));
    // DynamoDB refuses an empty key value in a key condition; SQLite must too.
    for empty in [
        SortKeyCondition::Between(String::new(), "~".into()),
        SortKeyCondition::BeginsWith(String::new()),
    ] {
        assert!(matches!(
            store.query(&Query::gsi1(&key.pk).sk(empty)).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert_eq!(store.get(&key).await.unwrap(), None);
}

fn claim_op(key: &Key, ttl: i64, now: i64, tag: &str) -> WriteOp {
    WriteOp::Claim {
        item: Item::new(key.clone()).with("tag", tag).with_ttl(ttl),
        now,
        stamp: None,
    }
}

/// A key is claimed once while its claim lives: a second claim is refused and reports the
/// first; after the claim's TTL it can be claimed again, and `get_claim` sees the live one.
pub async fn claims_are_taken_once_while_they_live(store: Arc<dyn Store>) {
    let key = Key::new(ns("claim"), "K#1");
    store
        .transact(vec![claim_op(&key, 1_000, 100, "first")])
        .await
        .unwrap();
    let again = store
        .transact(vec![claim_op(&key, 1_000, 200, "second")])
        .await;
    match again {
        Err(StoreError::TransactionCancelled { reasons }) => assert!(
            matches!(&reasons[0], CancelReason::ConditionFailed { current: Some(c) } if c.str("tag") == Some("first")),
            "{reasons:?}"
        ),
        other => panic!("expected a refused claim, got {other:?}"),
    }
    let alone = store.write(claim_op(&key, 1_000, 300, "alone")).await;
    assert!(
        matches!(alone, Err(StoreError::ConditionFailed { current: Some(_) })),
        "{alone:?}"
    );
    let live = store
        .get_claim(&key, 999)
        .await
        .unwrap()
        .expect("live claim");
    assert_eq!(live.str("tag"), Some("first"));
    assert_eq!(store.get_claim(&key, 1_001).await.unwrap(), None, "expired");
    assert_eq!(
        store.get_claim(&Key::new(&key.pk, "K#2"), 0).await.unwrap(),
        None
    );

    // Expired: claimable again, and the new claim is the one seen.
    store
        .transact(vec![claim_op(&key, 5_000, 1_001, "renewed")])
        .await
        .unwrap();
    let live = store
        .get_claim(&key, 1_002)
        .await
        .unwrap()
        .expect("renewed claim");
    assert_eq!(live.str("tag"), Some("renewed"));
}

/// A claim is part of its transaction: refused with it, and written with it, stamped with
/// another operation's post-image.
pub async fn claims_commit_with_their_transaction(store: Arc<dyn Store>) {
    let pk = ns("claimtx");
    let key = Key::new(&pk, "K#tx");
    let counter = Key::new(&pk, "COUNTER");
    let gate = Key::new(&pk, "GATE");
    store
        .put(Item::new(gate.clone()).with("open", false), None)
        .await
        .unwrap();
    let ops = |now: i64| {
        vec![
            WriteOp::Claim {
                item: Item::new(key.clone()).with_ttl(10_000),
                now,
                stamp: Some(eshtarek_core::store::Stamp {
                    from: 1,
                    attr: "used".into(),
                }),
            },
            WriteOp::Update {
                key: counter.clone(),
                actions: vec![UpdateAction::add("used", 5)],
                condition: None,
            },
            WriteOp::Check {
                key: gate.clone(),
                condition: Condition::eq("open", true),
            },
        ]
    };
    let err = store.transact(ops(1)).await.unwrap_err();
    assert_eq!(err.failed_condition_index(), Some(2), "{err:?}");
    assert_eq!(
        store.get_claim(&key, 1).await.unwrap(),
        None,
        "the claim did not land"
    );
    store
        .put(Item::new(gate.clone()).with("open", true), None)
        .await
        .unwrap();
    store.transact(ops(1)).await.unwrap();
    let claim = store.get_claim(&key, 2).await.unwrap().expect("claimed");
    assert_eq!(
        claim.decimal("used"),
        Some(Decimal::from(5)),
        "stamped: {claim:?}"
    );
    let err = store.transact(ops(2)).await.unwrap_err();
    assert_eq!(err.failed_condition_index(), Some(0), "{err:?}");
    // The same with the counter's post-image returned: the answer and the stamp agree.
    let second = Key::new(&pk, "K#returning");
    let mut returning = ops(3);
    if let WriteOp::Claim { item, .. } = &mut returning[0] {
        item.key = second.clone();
    }
    let after = store
        .transact_returning(returning, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.decimal("used"), Some(Decimal::from(10)));
    let claim = store.get_claim(&second, 3).await.unwrap().expect("claimed");
    assert_eq!(claim.decimal("used"), Some(Decimal::from(10)), "{claim:?}");
    assert_eq!(
        store.get(&counter).await.unwrap().unwrap().decimal("used"),
        Some(Decimal::from(10)),
        "counted once per claim"
    );
    let bad_stamp = store
        .transact(vec![WriteOp::Claim {
            item: Item::new(Key::new(&pk, "K#bad")).with_ttl(10),
            now: 1,
            stamp: Some(eshtarek_core::store::Stamp {
                from: 0,
                attr: "used".into(),
            }),
        }])
        .await;
    assert!(
        matches!(bad_stamp, Err(StoreError::Invalid(_))),
        "{bad_stamp:?}"
    );
    let no_ttl = store
        .transact(vec![WriteOp::Claim {
            item: Item::new(Key::new(&pk, "K#nottl")),
            now: 1,
            stamp: None,
        }])
        .await;
    assert!(matches!(no_ttl, Err(StoreError::Invalid(_))), "{no_ttl:?}");
}

/// Racing claims of one key: exactly one wins.
pub async fn claim_race_has_one_winner(store: Arc<dyn Store>) {
    let key = Key::new(ns("claimrace"), "K#race");
    let attempts = (0..40).map(|i| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move {
            store
                .transact(vec![claim_op(&key, 1_000, 1, &i.to_string())])
                .await
        })
    });
    let mut winners = 0;
    for outcome in join_all(attempts).await {
        match outcome.expect("task") {
            Ok(()) => winners += 1,
            Err(StoreError::TransactionCancelled { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners, 1);
}
