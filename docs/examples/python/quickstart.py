"""Credence from Python: profile, events, score, explanation and SQL over gRPC.

Start a node (`make dev`, gRPC on 127.0.0.1:50051), then from the repository root:

    $(deploy/local/python-env.sh) docs/examples/python/quickstart.py

deploy/local/python-env.sh prints a Python with grpcio and grpcio-tools (made once). The
stubs are generated from proto/credence/v1/*.proto at every start, so they always match the
contracts. Options: --target HOST:PORT, --subject ID, --proto-dir DIR, and for a node with
authentication or TLS on --token TOKEN (or $CREDENCE_TOKEN) and --ca-cert FILE. pyarrow, when
installed, is used to print the analytics result; it is not needed. All data is synthetic.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time
import uuid

import grpc
import grpc_tools
from grpc_tools import protoc
from google.protobuf import timestamp_pb2

PROTO_DIR = pathlib.Path(__file__).resolve().parents[3] / "proto"
TIMEOUT = 10  # seconds, per call and for waiting on scoring


def generate_stubs(proto_dir, out):
    """Runs protoc on credence/v1/*.proto into `out` and puts `out` first on sys.path."""
    protos = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.glob("credence/v1/*.proto"))
    if not protos:
        sys.exit(f"error: no credence/v1/*.proto under {proto_dir} (use --proto-dir)")
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out}",
            f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        sys.exit("error: protoc failed on the .proto files (see above)")
    for package in ("credence", "credence/v1"):  # regular packages win over any other `credence`
        (out / package / "__init__.py").touch()
    sys.path.insert(0, str(out))


def at(seconds_ago):
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(int(time.time()) - seconds_ago)
    return ts


def run_sql(query, query_pb2, sql):
    """RunAnalytics streams Arrow IPC in parts; returns (rows, ipc bytes)."""
    rows, ipc = 0, b""
    for part in query.RunAnalytics(query_pb2.RunAnalyticsRequest(sql=sql), timeout=TIMEOUT):
        rows, ipc = rows + part.rows, ipc + part.arrow_ipc
    return rows, ipc


def open_channel(args):
    """A channel with TLS (--ca-cert) and a bearer token (--token) when given."""
    if not args.ca_cert and not args.token:
        return grpc.insecure_channel(args.target)
    if args.ca_cert:
        credentials = grpc.ssl_channel_credentials(root_certificates=args.ca_cert.read_bytes())
    else:  # grpc sends a token in plaintext only to a node on this machine
        credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    if args.token:  # sent as `authorization: Bearer <token>` on every call
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(args.token))
    return grpc.secure_channel(args.target, credentials)


def main(args, out):
    generate_stubs(args.proto_dir.resolve(), out)
    from credence.v1 import common_pb2 as common
    from credence.v1 import ingestion_pb2, ingestion_pb2_grpc as ingestion_grpc
    from credence.v1 import query_pb2, query_pb2_grpc as query_grpc
    from credence.v1 import scoring_pb2, scoring_pb2_grpc as scoring_grpc

    channel = open_channel(args)
    try:
        grpc.channel_ready_future(channel).result(timeout=5)
    except grpc.FutureTimeoutError:
        sys.exit(f"error: no Credence node answers on {args.target} (start one with `make dev`)")
    ingestion = ingestion_grpc.IngestionServiceStub(channel)
    scoring = scoring_grpc.ScoringServiceStub(channel)
    query = query_grpc.QueryServiceStub(channel)
    subject = args.subject or f"py-quickstart-{uuid.uuid4().hex[:12]}"

    def snapshot():  # the subject's current score, None before its first event is scored
        try:
            request = scoring_pb2.GetScoreRequest(subject_id=subject)
            return scoring.GetScore(request, timeout=TIMEOUT).snapshot
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None

    profile = common.Profile(subject_id=subject, display_name="Sam Example (synthetic)",
                             birth_year=1990, region="north", occupation="teacher")
    request = ingestion_pb2.UpsertProfilesRequest(profiles=[profile])
    upserted = ingestion.UpsertProfiles(request, timeout=TIMEOUT)
    if upserted.rejected:
        sys.exit(f"error: profile rejected: {upserted.results[0].reason}")
    print(f"subject {subject}: profile stored")

    def event(kind, subkind, payload, seconds_ago):
        e = common.Event(event_id=f"py-{uuid.uuid4()}", subject_id=subject, event_type=kind,
                         event_subtype=subkind, source_system="python-quickstart",
                         occurred_at=at(seconds_ago))
        e.payload.update(payload)
        return e

    # What scorer/rules/example.yaml makes of them: -50 x 2 (over 30 days late), +20, +5.
    events = [event("financial", "late_payment", {"days_late": 45}, 3 * 3600),
              event("social", "volunteer_work", {"hours": 4}, 2 * 3600),
              event("financial", "bill_paid", {"days_late": 0}, 3600)]
    before = snapshot()
    expected = (before.applied_events if before else 0) + len(events)
    request = ingestion_pb2.PublishEventsRequest(events=events)
    published = ingestion.PublishEvents(request, timeout=TIMEOUT)
    if published.accepted != len(events):
        problems = [f"{r.event_id}: {r.reason}" for r in published.results if r.reason]
        sys.exit(f"error: {published.accepted} of {len(events)} events accepted: {problems}")
    print(f"published {published.accepted} events")

    # Accepted events are durable at once and scored a few milliseconds later: poll.
    deadline = time.monotonic() + TIMEOUT
    while (snap := snapshot()) is None or snap.applied_events < expected:
        if time.monotonic() > deadline:
            sys.exit(f"error: the events were not scored within {TIMEOUT} s")
        time.sleep(0.1)
    print(f"score {snap.score:.1f}, tier {snap.tier} ({snap.applied_events} events applied)")

    request = scoring_pb2.ExplainScoreRequest(subject_id=subject)
    for c in scoring.ExplainScore(request, timeout=TIMEOUT).changes:
        print(f"  change: {c.rule_id} @ v{c.rule_version}: {c.delta:+.1f} ({c.reason})")

    # The analytics archive may trail scoring by a moment: wait for this subject's events.
    quoted = subject.replace("'", "''")
    mine = f"select event_id from events where subject_id = '{quoted}'"
    deadline = time.monotonic() + TIMEOUT
    while run_sql(query, query_pb2, mine)[0] < expected:
        if time.monotonic() > deadline:
            sys.exit("error: the events did not reach the analytics archive in time")
        time.sleep(0.2)
    sql = "select event_type, count(*) as n from events group by 1 order by 1"
    rows, ipc = run_sql(query, query_pb2, sql)
    print(f"analytics: {rows} rows from: {sql}")
    try:
        import pyarrow.ipc
    except ImportError:
        return  # `pip install pyarrow` to see the rows themselves
    for row in pyarrow.ipc.open_stream(ipc).read_all().to_pylist():
        print(f"  {row}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="the node's gRPC address")
    parser.add_argument("--token", default=os.environ.get("CREDENCE_TOKEN"),
                        help="bearer token (default: $CREDENCE_TOKEN); needs producer and reader")
    parser.add_argument("--ca-cert", type=pathlib.Path,
                        help="CA certificate (PEM) of a node with TLS on")
    parser.add_argument("--subject", help="subject id to use (default: a new synthetic one)")
    parser.add_argument("--proto-dir", type=pathlib.Path, default=PROTO_DIR,
                        help="folder holding credence/v1/*.proto (default: the repository's)")
    arguments = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="credence-stubs-") as tmp:
            main(arguments, pathlib.Path(tmp))
    except grpc.RpcError as e:
        sys.exit(f"error: {e.code().name}: {e.details()}")
