"""The accounts contract as a Hypothesis state machine: sign-ups (anonymous or not, emails
sometimes reused in another case), sessions at mixed timestamp formats and offsets, cleanup at
an explicit ``now``, uploads, ownership transfers, user deletion and the extraction cache with
confidences around the threshold. Faker data, seeded ids, explicit times."""

from __future__ import annotations

from datetime import timedelta, timezone

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, multiple, precondition, rule

from scenarios.families.accounts.plans import EPOCH
from scenarios.stateful.machine import FAULT, MISS, PLAIN, FamilyMachine, data_for

MISSING_USER = "u-missing"
MISSING_UPLOAD = "cv-missing"
FILE_HASHES = ("fh-a", "fh-b", "fh-c")
CONFIDENCES = (0.2, 0.74, 0.75, 0.7500001, 0.76, 0.9, 1.0)
#: How a client may write one instant: ISO with T, with a space, with Z, or at another offset.
TIME_FORMATS = ("iso", "space", "zulu", "plus2", "minus5", "space", "minus5")
#: Session hours of the day: mostly close to midnight, where cleanup cutoffs fall.
HOURS = (0, 1, 3, 12, 22, 23)


def stamp(hours: int, minutes: int, fmt: str) -> str:
    """``EPOCH + hours:minutes`` written in format ``fmt`` (the same instant every time)."""
    t = EPOCH + timedelta(hours=hours, minutes=minutes)
    if fmt == "space":
        return t.replace(tzinfo=None).isoformat(sep=" ")
    if fmt == "zulu":
        return t.replace(tzinfo=None).isoformat() + "Z"
    if fmt == "plus2":
        return t.astimezone(timezone(timedelta(hours=2))).isoformat()
    if fmt == "minus5":
        return t.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return t.isoformat()


class AccountsMachine(FamilyMachine):
    """Rules over every accounts operation."""

    users = Bundle("users")
    uploads = Bundle("uploads")

    def setup(self) -> None:
        self.emails: list[str] = []  # every email signed up with, to reuse in another case

    @initialize(target=users, seed=st.integers(0, 2**16))
    def sign_up_two(self, seed: int) -> object:
        """Every example starts with an anonymous and a registered user."""
        df = data_for(seed)
        made = []
        for anonymous in (True, False):
            uid = self.ids.new("u")
            email = df.fake.email()
            self.emails.append(email)
            self._do("create_user", user_id=uid, email=email, is_anonymous=anonymous)
            made.append(uid)
        return multiple(*made)

    @rule(fault=FAULT, target=users, seed=st.integers(0, 2**16), anonymous=st.booleans(),
          reuse=st.integers(0, 5))
    def create_user(self, fault: int | None, seed: int, anonymous: bool, reuse: int) -> str:
        df = data_for(seed)
        if reuse == 5 and self.emails:
            email = self.emails[seed % len(self.emails)].upper()  # taken, in another case
        else:
            email = df.fake.email()
        uid = self.ids.new("u")
        self.emails.append(email)
        self._do("create_user", fault=fault, user_id=uid, email=email, is_anonymous=anonymous)
        return uid

    @rule(fault=FAULT, uid=users, miss=MISS)
    def delete_user(self, fault: int | None, uid: str, miss: bool) -> None:
        self._do("delete_user", fault=fault, user_id=MISSING_USER if miss else uid)

    # Hypothesis tries rules with fewer arguments first: the session rules draw theirs as one
    # tuple so that they come early.
    @rule(fault=FAULT, uid=users,
          spec=st.tuples(MISS, st.integers(0, 2), st.sampled_from(HOURS), st.sampled_from([0, 30]),
                         st.sampled_from(TIME_FORMATS)))
    def create_session(self, fault: int | None, uid: str,
                       spec: tuple[bool, int, int, int, str]) -> None:
        miss, day, hour, minutes, fmt = spec
        sid = self.ids.new("s")
        self._do("create_session", fault=fault, session_id=sid,
                 user_id=MISSING_USER if miss else uid,
                 created_at=stamp(day * 24 + hour, minutes, fmt))

    @rule(fault=FAULT, spec=st.tuples(st.integers(0, 1), st.integers(1, 3),
                                      st.sampled_from([0, 0, 12])))
    def cleanup_sessions(self, fault: int | None, spec: tuple[int, int, int]) -> None:
        days, now_day, now_hour = spec
        self._do("cleanup_sessions", fault=fault, older_than_days=days,
                 now=stamp(now_day * 24 + now_hour, 0, "iso"))

    @rule(fault=FAULT, target=uploads, uid=users, miss=MISS, seed=st.integers(0, 2**16))
    def create_upload(self, fault: int | None, uid: str, miss: bool, seed: int) -> str:
        df = data_for(seed)
        jid = self.ids.new("cv")
        self._do("create_upload", fault=fault, job_id=jid, user_id=MISSING_USER if miss else uid,
                 file_hash=df.fake.sha256()[:16], filename=df.filename())
        return jid

    @rule(fault=FAULT, jid=uploads, uid=users, miss=MISS)
    def transfer(self, fault: int | None, jid: str, uid: str, miss: bool) -> None:
        self._do("transfer_cv_ownership", fault=fault, job_id=MISSING_UPLOAD if miss else jid,
                 new_user_id=uid)

    @rule(fault=FAULT, file_hash=st.sampled_from(FILE_HASHES),
          confidence=st.sampled_from(CONFIDENCES), seed=st.integers(0, 2**16))
    def cache_extraction(self, fault: int | None, file_hash: str, confidence: float,
                         seed: int) -> None:
        df = data_for(seed)
        data = {"name": df.fake.name(), "email": df.fake.email(),
                "skills": [df.fake.word() for _ in range(2)]}
        self._do("cache_extraction", fault=fault, file_hash=file_hash, data=data,
                 confidence=confidence)

    @rule(fault=FAULT, file_hash=st.sampled_from(FILE_HASHES))
    def get_cached_extraction(self, fault: int | None, file_hash: str) -> None:
        self._do("get_cached_extraction", fault=fault, file_hash=file_hash)

    @precondition(lambda self: self.search.mode == PLAIN)
    @rule(what=st.sampled_from(["get_user", "get_upload"]), uid=users, jid=uploads)
    def read(self, what: str, uid: str, jid: str) -> None:
        """A read-only operation (no fault points)."""
        if what == "get_user":
            self._do("get_user", user_id=uid)
        else:
            self._do("get_upload", job_id=jid)
