"""``DiffMemo``: the plan's reuse of a diff while both configs stay equal gives the same plans."""

from __future__ import annotations

import copy

from reconcile_fixtures import OWNER, actual, config, desired_domain, desired_set

from reconcilers.diff import DiffMemo, diff_domain
from reconcilers.plan import plan
from reconcilers.policy import Policy
from reconcilers.state import Inventory


def test_equal_pair_reuses_the_diff_and_a_changed_one_is_diffed_again():
    memo = DiffMemo()
    want, have = config("web", target=262144), config("web")
    first = memo.diff("web", want, have)
    assert memo.diff("web", want, copy.deepcopy(have)) is first
    assert [c.kind for c in first.hot] == ["set-memory"]
    have["b_info"]["target_memkb"] = 262144  # changed in place: the memo kept its own copy
    assert memo.diff("web", want, have).empty
    assert memo.diff("web", want, have) == diff_domain(want, have)


def test_plans_with_and_without_the_memo_are_the_same_across_changes():
    memo, policy = DiffMemo(), Policy(owner=OWNER)
    desired = desired_set(desired_domain(config("web", target=262144)), desired_domain(config("db")))
    host = [actual(config("web"), 1), actual(config("db"), 2)]
    for _ in range(2):
        assert plan(desired, host, policy, Inventory(), memo).to_json() == \
            plan(desired, host, policy, Inventory()).to_json()
    db_one_vcpu = config("db")
    db_one_vcpu["b_info"]["avail_vcpus"] = [0]
    host = [actual(config("web", target=262144), 3), actual(db_one_vcpu, 2)]
    with_memo = plan(desired, host, policy, Inventory(), memo)
    assert with_memo.to_json() == plan(desired, host, policy, Inventory()).to_json()
    assert [a.kind for a in with_memo.actions] == ["set-vcpus"]


def test_names_that_left_the_plan_are_dropped():
    memo, policy = DiffMemo(), Policy(owner=OWNER)
    web, db = config("web"), config("db")
    plan(desired_set(desired_domain(web), desired_domain(db)), [actual(web, 1), actual(db, 2)], policy,
         Inventory(), memo)
    first_db = memo.diff("db", db, db)
    plan(desired_set(desired_domain(web)), [actual(web, 1)], policy, Inventory(), memo)
    assert memo.diff("db", db, db) is not first_db
