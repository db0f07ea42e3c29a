"""Schemathesis hooks of scripts/fuzz-api.

- The fuzzing admin must not lock itself out. The run fuzzes `DELETE …/tokens/{id}` and
  `POST …/members/{id}/archive` with real ids, and one of them is its own: revoking its token or
  archiving its membership would turn every later request into a 401 or 403, which the schema
  allows, so the rest of the run would test nothing. Such a request goes to the decoy token or
  member that scripts/fuzz-api made for the purpose instead, so those operations still revoke and
  archive for real.
- An upload with an `Idempotency-Key` that an earlier upload got a 202 with is a replay: it
  answers that import, 202, without reading the body (documented), so a schema-violating body
  sent with such a key is accepted on purpose. Only that failure is dropped, and only for replays:
  the output counts it as "dropped by `filter_failure`".
"""

import os

import schemathesis

# operation -> (the fuzzing admin's id, the decoy's id), from scripts/fuzz-api.
PROTECTED = {
    "DELETE /api/v1/workspaces/{ws}/tokens/{id}": (
        int(os.environ["FUZZ_TOKEN_ID"]),
        int(os.environ["FUZZ_DECOY_TOKEN_ID"]),
    ),
    "POST /api/v1/workspaces/{ws}/members/{id}/archive": (
        int(os.environ["FUZZ_MEMBER_ID"]),
        int(os.environ["FUZZ_DECOY_MEMBER_ID"]),
    ),
}


def _as_int(value):
    # The server reads `01` or `+1` as 1 too.
    try:
        return int(str(value).strip())
    except ValueError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    own, decoy = PROTECTED.get(case.operation.label, (None, None))
    if own is not None and _as_int(case.path_parameters.get("id")) == own:
        case.path_parameters["id"] = decoy


UPLOAD = "POST /api/v1/workspaces/{ws}/imports"
# Idempotency-Key -> the id of the case whose upload first got a 202 with it.
FIRST_WITH_KEY = {}


def _key(case):
    key = case.headers.get("Idempotency-Key") if case.headers else None
    # The server reads the key trimmed.
    return key.strip() if isinstance(key, str) else None


@schemathesis.hook
def after_call(context, case, response):
    key = _key(case)
    if case.operation.label == UPLOAD and response.status_code == 202 and key:
        FIRST_WITH_KEY.setdefault(key, case.id)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    replay = case.operation.label == UPLOAD and FIRST_WITH_KEY.get(_key(case), case.id) != case.id
    return not (replay and failure.code == "ST201")
