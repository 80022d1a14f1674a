"""moto's server as the upstream AWS (S3, Kinesis, Firehose) for the delivery tests.

`MotoServer` runs `python -m moto.server -H 127.0.0.1 -p <free port>` (the running interpreter,
so it uses the same environment as the tests), waits until it answers, and kills it at the
end. Helpers create buckets / Kinesis streams / Firehose delivery streams in it and read back
what the gateway delivered. moto takes any credentials; the gateway gets `MOTO_KEY` /
`MOTO_SECRET` (env `MOTO_SECRET_ENV`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3
import requests
from botocore.config import Config

from kutil import _ALL_PROCS, _die_with_parent, free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
MOTO_KEY = "testing"
MOTO_SECRET = "testing"
MOTO_SECRET_ENV = "KINEDGE_TEST_MOTO_SECRET"


class MotoServer:
    def __init__(self, log_path):
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "MotoServer":
        env = dict(os.environ)
        # moto's server must not reach anywhere else; nothing here needs the AWS environment.
        for k in list(env):
            if k.startswith("AWS_"):
                env.pop(k)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=_die_with_parent)
        _ALL_PROCS.append(self.proc)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                # moto's own dashboard API answers once the server is up
                r = requests.get(f"{self.url}/moto-api/data.json", timeout=1)
                if r.status_code == 200:
                    return self
                last = r.status_code
            except requests.RequestException as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"moto server not up after {timeout}s (last: {last!r})\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(open(self.log_path, "rb").read().decode("utf-8", "replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # ---- clients -------------------------------------------------------------------------------
    def client(self, service: str):
        return boto3.session.Session().client(
            service, endpoint_url=self.url, region_name=REGION, aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_SECRET,
            config=Config(retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                          read_timeout=30, s3={"addressing_style": "path"}))

    def gateway_env(self) -> dict:
        """Env for a gateway whose destinations use this moto with `secret_env`."""
        return {MOTO_SECRET_ENV: MOTO_SECRET}

    def aws_env(self) -> dict:
        """Standard AWS env pointing at this moto (for API-created delivery streams)."""
        return {"AWS_ACCESS_KEY_ID": MOTO_KEY, "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.url, "AWS_ENDPOINT_URL_S3": self.url}

    def credentials(self) -> dict:
        """Destination keys for credentials from the config."""
        return {"access_key_id": MOTO_KEY, "secret_env": MOTO_SECRET_ENV}

    # ---- S3 --------------------------------------------------------------------------------------
    def create_bucket(self, name: str) -> str:
        self.client("s3").create_bucket(Bucket=name)
        return name

    def s3_destination(self, bucket: str, **extra) -> dict:
        return {"type": "s3", "bucket": bucket, "region": REGION, "endpoint": self.url,
                "force_path_style": True, **self.credentials(), **extra}

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        s3 = self.client("s3")
        keys, token = [], None
        for _ in range(1000):
            kw = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            resp = s3.list_objects_v2(**kw)
            keys += [o["Key"] for o in resp.get("Contents", [])]
            token = resp.get("NextContinuationToken")
            if not token:
                break
        return keys

    def get(self, bucket: str, key: str) -> bytes:
        return self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        return {k: self.get(bucket, k) for k in self.list_keys(bucket, prefix)}

    def wait_objects(self, bucket: str, pred, timeout: float = 20.0, prefix: str = "") -> dict[str, bytes]:
        """Poll the bucket until pred({key: body}) is truthy; return the objects."""
        deadline = time.monotonic() + timeout
        objs = {}
        while time.monotonic() < deadline:
            objs = self.objects(bucket, prefix)
            if pred(objs):
                return objs
            time.sleep(0.25)
        raise AssertionError(f"bucket {bucket} did not reach the expected state in {timeout}s; "
                             f"keys now: {sorted(objs)[:20]}")

    # ---- Kinesis ---------------------------------------------------------------------------------
    def create_stream(self, name: str, shards: int = 1) -> None:
        k = self.client("kinesis")
        k.create_stream(StreamName=name, ShardCount=shards)
        k.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})

    def kinesis_destination(self, stream: str, **extra) -> dict:
        return {"type": "kinesis", "stream": stream, "region": REGION, "endpoint": self.url,
                **self.credentials(), **extra}

    def read_stream(self, name: str) -> list[dict]:
        """Every record of every shard, shard by shard in order, each with its ShardId."""
        k = self.client("kinesis")
        out = []
        for s in k.list_shards(StreamName=name)["Shards"]:
            it = k.get_shard_iterator(StreamName=name, ShardId=s["ShardId"],
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for _ in range(1000):
                resp = k.get_records(ShardIterator=it, Limit=10000)
                out += [dict(r, ShardId=s["ShardId"]) for r in resp["Records"]]
                it = resp.get("NextShardIterator")
                if not it or not resp["Records"]:
                    break
        return out

    def wait_stream_records(self, name: str, n: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        recs = []
        while time.monotonic() < deadline:
            recs = self.read_stream(name)
            if len(recs) >= n:
                return recs
            time.sleep(0.25)
        raise AssertionError(f"moto stream {name} has {len(recs)} of {n} records after {timeout}s")

    # ---- Firehose --------------------------------------------------------------------------------
    def create_firehose_to_s3(self, name: str, bucket: str, prefix: str = "") -> None:
        """A moto delivery stream writing straight to a moto bucket (moto writes one object per
        PutRecord(Batch), right away)."""
        self.client("firehose").create_delivery_stream(
            DeliveryStreamName=name, DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
                "BucketARN": f"arn:aws:s3:::{bucket}", "Prefix": prefix,
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})

    def firehose_destination(self, delivery_stream: str, **extra) -> dict:
        return {"type": "firehose", "delivery_stream": delivery_stream, "region": REGION,
                "endpoint": self.url, **self.credentials(), **extra}
