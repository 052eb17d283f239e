"""Hooks of the schemathesis run (scripts/schemathesis).

The run's session: a registered user who shares and is checked in, so that nearby and the live
radar answer 200. Operations that end the session (DELETE /v1/me, POST /v1/auth/logout-all, a
password change) are tested like any other: the next request with the ended token gets 401, which
makes schemathesis call `get` again (its reactive re-authentication), and `get` signs the same
user in again (the resources the stateful phase created stay theirs), or signs up a new user when
that user is gone.
"""

import datetime
import itertools
import os
import random
import threading
import uuid

import requests
import schemathesis

BASE_URL = os.environ["HB_ST_BASE_URL"]
_serial = itertools.count()
_lock = threading.Lock()
# every user the run signed up: the caller is never a valid other party (blocking, asking,
# muting oneself is refused with 422, which no schema can state)
_own_ids: set[str] = set()


PASSWORD = "correct horse battery"
_last_email: list[str] = []


def _session() -> str:
    if _last_email:
        r = requests.post(
            f"{BASE_URL}/v1/auth/login", json={"email": _last_email[0], "password": PASSWORD}, timeout=10
        )
        if r.status_code == 200:
            return r.json()["access_token"]
    return _new_session()


def _new_session() -> str:
    with _lock:
        n = next(_serial)
    email = f"schemathesis-{os.getpid()}-{n}@example.com"
    r = requests.post(
        f"{BASE_URL}/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": f"Schema Thesis {n}"},
        timeout=10,
    )
    r.raise_for_status()
    token = r.json()["access_token"]
    with _lock:
        _own_ids.add(r.json()["user"]["id"])
        _last_email[:] = [email]
    auth = {"Authorization": f"Bearer {token}"}
    requests.patch(f"{BASE_URL}/v1/me/privacy", headers=auth, json={"sharing": True}, timeout=10).raise_for_status()
    requests.post(
        f"{BASE_URL}/v1/checkins", headers=auth, json={"lat": 48.8566, "lng": 2.3522, "ttl_s": 3600}, timeout=10
    ).raise_for_status()
    return token


@schemathesis.auth()
class FreshUser:
    def get(self, case, ctx):
        return _session()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# Rules a JSON Schema cannot state, because they depend on the clock, on another field or on the
# network: a check-in's `recorded_at` within its lifetime, a trip's and an event's dates in order
# and in the future, a webhook whose host resolves. The spec's descriptions say them; for the
# positive phase (what `positive_data_acceptance` judges) the generated values are moved inside
# them, everything else as generated. Negative cases are left alone.
def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _rfc3339(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    return _within_runtime_rules(case)


@schemathesis.hook
def before_add_examples(context, examples):
    # the examples phase's cases (from the spec's examples and formats: `2000-01-01T00:00:00Z`)
    for case in examples:
        _within_runtime_rules(case)


def _within_runtime_rules(case):
    params = case.path_parameters or {}
    for name in ("user_id", "id"):
        if str(params.get(name)) in _own_ids and "/v1/users/" not in case.operation.path:
            params[name] = str(uuid.uuid4())
    if not isinstance(case.body, dict):
        return case
    body = dict(case.body)
    if str(body.get("to_user_id")) in _own_ids:
        body["to_user_id"] = str(uuid.uuid4())
    label = case.operation.label
    if label == "POST /v1/checkins" and body.get("recorded_at") is not None:
        body["recorded_at"] = _rfc3339(_now() - datetime.timedelta(seconds=random.randint(0, 50)))
    elif label in ("POST /v1/trips", "PATCH /v1/trips/{id}") and (
        label == "POST /v1/trips" or body.get("starts_on") is not None or body.get("ends_on") is not None
    ):
        start = _now().date() + datetime.timedelta(days=random.randint(0, 300))
        body["starts_on"] = start.isoformat()
        body["ends_on"] = (start + datetime.timedelta(days=random.randint(0, 89))).isoformat()
    elif label == "POST /v1/events":
        start = _now() + datetime.timedelta(minutes=random.randint(-600, 6000))
        body["starts_at"] = _rfc3339(start)
        body["ends_at"] = _rfc3339(start + datetime.timedelta(minutes=random.randint(1, 14 * 24 * 60)))
    elif label == "POST /v1/devices" and body.get("platform") == "webhook":
        body["token"] = f"https://127.0.0.1:{random.randint(1, 9999)}/hook"
    elif label == "POST /v1/devices" and body.get("platform") == "web":
        # a browser's subscription whose keys are a real P-256 point and secret (RFC 8291's
        # example) and whose endpoint the server may reach
        body["subscription"] = {
            "endpoint": f"https://127.0.0.1:{random.randint(1, 9999)}/push",
            "keys": {
                "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                "auth": "BTBZMqHH6r4Tts7J_aSIgg",
            },
        }
    case.body = body
    return case
