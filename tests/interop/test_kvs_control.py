"""Kinesis Video Streams' control plane (issue 17) against the real binary, with boto3's
`kinesisvideo` client: streams created through the API (and kept across a restart), cameras
from device files listed as read-only streams, versions, tags, GetDataEndpoint, the model's
refusals (botocore's own validation off where AWS's server would refuse), and SigV4."""

import re
import subprocess
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from kutil import REGION, ACCOUNT, TEST_KEY, TEST_SECRET_ENV, unique

pytestmark = pytest.mark.timeout(120)

VIDEO_CONFIG = "[mqtt]\nenabled = false\n\n[video]\nfragment_duration_ms = 1000\n"
ARN_RE = re.compile(rf"^arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/([a-zA-Z0-9_.-]+)/([0-9]+)$")
SECRET = "kvs-control-secret"
API_NAMES = ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
             "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
             "GET_IMAGES"]


def kvs(gw, validate=True, secret="secret"):
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                 parameter_validation=validate, connect_timeout=5, read_timeout=30)
    return boto3.session.Session().client(
        "kinesisvideo", endpoint_url=gw.url, region_name=REGION,
        aws_access_key_id=TEST_KEY, aws_secret_access_key=secret, config=cfg,
        verify=str(gw.tls_ca) if gw.tls_ca else None)


def error(code, fn, *args, mentions=(), **kwargs):
    with pytest.raises(ClientError) as caught:
        fn(*args, **kwargs)
    err = caught.value.response["Error"]
    assert err["Code"] == code, caught.value.response
    for word in mentions:
        assert word in err["Message"], err
    return err


def camera_file(gw, name, retention_hours):
    # The source never answers: the camera runs (and retries) without recording, which is all
    # the control plane needs to list it.
    d = gw.dir / "devices"
    d.mkdir(exist_ok=True)
    (d / f"{name}.toml").write_text(
        f'id = "{name}"\nkind = "camera"\n\n[camera]\nsource = "rtsp://127.0.0.1:9/cam"\n'
        f"retention_hours = {retention_hours}\n")


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    gw = module_gateway_factory(extra_config=VIDEO_CONFIG, name="kvs-control", start=False)
    camera_file(gw, "door", 36)
    return gw.start()


@pytest.fixture(scope="module")
def kv(gw):
    return kvs(gw)


@pytest.fixture(scope="module")
def raw(gw):
    return kvs(gw, validate=False)


def describe(kv, name):
    return kv.describe_stream(StreamName=name)["StreamInfo"]


def list_all(kv, **kwargs):
    infos, token, pages = [], None, 0
    while True:
        page = kv.list_streams(**kwargs, **({"NextToken": token} if token else {}))
        infos += page["StreamInfoList"]
        pages += 1
        token = page.get("NextToken")
        if not token:
            return infos, pages
        assert pages < 100


def test_create_describe_list_delete(kv):
    name = unique("kvs")
    before = time.time()
    arn = kv.create_stream(StreamName=name, DeviceName="cam-1", MediaType="video/h264",
                           DataRetentionInHours=24, KmsKeyId="alias/edge",
                           Tags={"team": "edge"})["StreamARN"]
    m = ARN_RE.match(arn)
    assert m and m.group(1) == name, arn
    info = describe(kv, name)
    assert info["StreamName"] == name and info["StreamARN"] == arn
    assert info["Status"] == "ACTIVE"
    assert info["DeviceName"] == "cam-1" and info["MediaType"] == "video/h264"
    assert info["KmsKeyId"] == "alias/edge"
    assert info["DataRetentionInHours"] == 24
    assert re.fullmatch(r"[a-zA-Z0-9]+", info["Version"])
    created = info["CreationTime"].timestamp()
    assert before - 5 <= created <= time.time() + 5
    assert int(m.group(2)) == round(created * 1000)
    assert kv.describe_stream(StreamARN=arn)["StreamInfo"] == info
    listed, _ = list_all(kv)
    assert [i for i in listed if i["StreamName"] == name] == [info]

    kv.delete_stream(StreamARN=arn, CurrentVersion=info["Version"])
    deadline = time.monotonic() + 30
    while True:
        try:
            assert describe(kv, name)["Status"] == "DELETING"
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        assert time.monotonic() < deadline, "the stream was never deleted"
        time.sleep(0.2)
    error("ResourceNotFoundException", kv.delete_stream, StreamARN=arn)
    # The name is free again: a new stream, a new ARN.
    arn2 = kv.create_stream(StreamName=name)["StreamARN"]
    info2 = describe(kv, name)
    assert info2["DataRetentionInHours"] == 0 and "MediaType" not in info2
    if arn != arn2:
        error("ResourceNotFoundException", kv.describe_stream, StreamARN=arn)
    kv.delete_stream(StreamARN=arn2)


def test_list_filter_and_pagination(kv):
    prefix = unique("page")
    names = sorted(f"{prefix}-{i}" for i in range(7))
    for name in names:
        kv.create_stream(StreamName=name)
    cond = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}
    infos, pages = list_all(kv, MaxResults=3, StreamNameCondition=cond)
    assert [i["StreamName"] for i in infos] == names
    assert pages == 3
    one = kv.list_streams(MaxResults=7, StreamNameCondition=cond)
    assert len(one["StreamInfoList"]) == 7 and "NextToken" not in one
    assert kv.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                "ComparisonValue": prefix + "-x"})["StreamInfoList"] == []
    # A paginator as boto3 offers it.
    paged = kv.get_paginator("list_streams").paginate(
        StreamNameCondition=cond, PaginationConfig={"PageSize": 2})
    assert [i["StreamName"] for page in paged for i in page["StreamInfoList"]] == names


def test_versions(kv):
    name = unique("ver")
    kv.create_stream(StreamName=name, DataRetentionInHours=2)
    v0 = describe(kv, name)["Version"]
    error("VersionMismatchException", kv.update_stream, StreamName=name, CurrentVersion="nope1",
          DeviceName="x")
    kv.update_stream(StreamName=name, CurrentVersion=v0, DeviceName="dev-2", MediaType="video/h265")
    info = describe(kv, name)
    assert info["DeviceName"] == "dev-2" and info["MediaType"] == "video/h265"
    v1 = info["Version"]
    assert v1 != v0
    error("VersionMismatchException", kv.update_stream, StreamName=name, CurrentVersion=v0,
          DeviceName="x")
    kv.update_data_retention(StreamName=name, CurrentVersion=v1,
                             Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=10)
    info = describe(kv, name)
    assert info["DataRetentionInHours"] == 12
    v2 = info["Version"]
    assert v2 not in (v0, v1)
    error("VersionMismatchException", kv.update_data_retention, StreamName=name, CurrentVersion=v1,
          Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=1)
    error("InvalidArgumentException", kv.update_data_retention, StreamName=name, CurrentVersion=v2,
          Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=13)
    kv.update_data_retention(StreamName=name, CurrentVersion=v2,
                             Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=12)
    info = describe(kv, name)
    assert info["DataRetentionInHours"] == 0
    arn = info["StreamARN"]
    error("VersionMismatchException", kv.delete_stream, StreamARN=arn, CurrentVersion=v2)
    kv.delete_stream(StreamARN=arn, CurrentVersion=info["Version"])


def test_not_found_and_in_use(kv):
    error("ResourceNotFoundException", kv.describe_stream, StreamName=unique("none"))
    missing_arn = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/{unique('none')}/1700000000000"
    error("ResourceNotFoundException", kv.delete_stream, StreamARN=missing_arn)
    error("ResourceNotFoundException", kv.update_stream, StreamName=unique("none"),
          CurrentVersion="1")
    error("ResourceNotFoundException", kv.get_data_endpoint, StreamName=unique("none"),
          APIName="GET_MEDIA")
    name = unique("dup")
    arn = kv.create_stream(StreamName=name)["StreamARN"]
    error("ResourceInUseException", kv.create_stream, StreamName=name, mentions=(name,))
    # The stream's name with another creation time is another (absent) stream.
    other = arn.rsplit("/", 1)[0] + "/1"
    assert other != arn
    error("ResourceNotFoundException", kv.describe_stream, StreamARN=other)


def test_invalid_arguments(kv, raw):
    for bad in ["", "a" * 257, "bad name", "bad/name", "ünï"]:
        error("InvalidArgumentException", raw.create_stream, StreamName=bad)
    assert kv.create_stream(StreamName="a" * 256)["StreamARN"]
    error("InvalidArgumentException", raw.create_stream, StreamName=unique("x"),
          DataRetentionInHours=-1)
    error("InvalidArgumentException", raw.create_stream, StreamName=unique("x"),
          DataRetentionInHours=87601)
    error("InvalidArgumentException", raw.create_stream, StreamName=unique("x"), MediaType="video")
    error("InvalidArgumentException", raw.create_stream, StreamName=unique("x"), DeviceName="a b")
    error("InvalidArgumentException", raw.create_stream, StreamName=unique("x"),
          Tags={"bad#key": "v"})
    error("InvalidArgumentException", raw.create_stream, StreamName=unique("x"),
          Tags={f"k{i}": "v" for i in range(51)})
    error("InvalidArgumentException", raw.create_stream)
    error("InvalidArgumentException", raw.describe_stream)
    name = unique("inv")
    arn = kv.create_stream(StreamName=name)["StreamARN"]
    error("InvalidArgumentException", raw.describe_stream, StreamName=name, StreamARN=arn)
    error("InvalidArgumentException", raw.describe_stream, StreamARN="arn:aws:kinesis:x:1:stream/y")
    error("InvalidArgumentException", raw.list_streams, MaxResults=0)
    error("InvalidArgumentException", raw.list_streams, MaxResults=10001)
    error("InvalidArgumentException", raw.list_streams, NextToken="not a token!")
    error("InvalidArgumentException", raw.list_streams,
          StreamNameCondition={"ComparisonOperator": "ENDS_WITH", "ComparisonValue": "x"})
    error("InvalidArgumentException", raw.update_stream, StreamName=name, CurrentVersion="v-1")
    error("InvalidArgumentException", raw.update_data_retention, StreamName=name,
          CurrentVersion="1", Operation="DOUBLE", DataRetentionChangeInHours=1)
    error("InvalidArgumentException", raw.update_data_retention, StreamName=name,
          CurrentVersion="1", Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=0)
    error("InvalidArgumentException", raw.get_data_endpoint, StreamName=name, APIName="PUT_IT")
    error("InvalidArgumentException", raw.tag_stream, StreamName=name, Tags={})
    error("InvalidArgumentException", raw.untag_stream, StreamName=name, TagKeyList=[])


def test_tags(kv):
    name = unique("tags")
    arn = kv.create_stream(StreamName=name, Tags={"a": "1"})["StreamARN"]
    version = describe(kv, name)["Version"]
    kv.tag_stream(StreamName=name, Tags={"b": "2", "a": "one"})
    assert kv.list_tags_for_stream(StreamName=name)["Tags"] == {"a": "one", "b": "2"}
    kv.untag_stream(StreamARN=arn, TagKeyList=["a", "missing"])
    assert kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": "2"}
    # Tags are not versioned.
    assert describe(kv, name)["Version"] == version
    kv.tag_stream(StreamName=name, Tags={f"k{i}": "v" for i in range(49)})
    error("TagsPerResourceExceededLimitException", kv.tag_stream, StreamName=name,
          Tags={"one-too-many": "v"})
    assert len(kv.list_tags_for_stream(StreamName=name)["Tags"]) == 50
    # The *Resource operations, by ARN, tags as Key/Value lists.
    kv.untag_resource(ResourceARN=arn, TagKeyList=[f"k{i}" for i in range(49)])
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "env", "Value": "edge lab"}])
    assert kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"b": "2", "env": "edge lab"}
    kv.untag_resource(ResourceARN=arn, TagKeyList=["b"])
    assert kv.list_tags_for_stream(StreamName=name)["Tags"] == {"env": "edge lab"}
    error("ResourceNotFoundException", kv.list_tags_for_stream, StreamName=unique("none"))


def test_get_data_endpoint_answers_the_gateway(gw, kv):
    name = unique("ep")
    kv.create_stream(StreamName=name)
    for api in API_NAMES:
        assert kv.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"] == gw.url
    assert kv.get_data_endpoint(StreamName="door", APIName="GET_MEDIA")["DataEndpoint"] == gw.url


def test_a_camera_is_a_read_only_stream(kv):
    info = describe(kv, "door")
    assert info["Status"] == "ACTIVE"
    assert info["DataRetentionInHours"] == 36
    assert ARN_RE.match(info["StreamARN"]).group(1) == "door"
    assert kv.describe_stream(StreamARN=info["StreamARN"])["StreamInfo"]["StreamName"] == "door"
    listed, _ = list_all(kv, StreamNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                  "ComparisonValue": "door"})
    assert [i["StreamName"] for i in listed] == ["door"]
    refused = "NotAuthorizedException"
    error(refused, kv.delete_stream, StreamARN=info["StreamARN"], mentions=("door.toml",))
    error(refused, kv.update_stream, StreamName="door", CurrentVersion=info["Version"],
          DeviceName="x", mentions=("door.toml",))
    error(refused, kv.update_data_retention, StreamName="door", CurrentVersion=info["Version"],
          Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1,
          mentions=("door.toml",))
    error(refused, kv.tag_stream, StreamName="door", Tags={"a": "b"}, mentions=("door.toml",))
    error("AccessDeniedException", kv.tag_resource, ResourceARN=info["StreamARN"],
          Tags=[{"Key": "a", "Value": "b"}])
    assert kv.list_tags_for_stream(StreamName="door")["Tags"] == {}
    error("ResourceInUseException", kv.create_stream, StreamName="door", mentions=("door.toml",))
    assert describe(kv, "door") == info
    # Cameras and created streams page together, by name.
    kv.create_stream(StreamName="door-x")
    kv.create_stream(StreamName="doo-1")
    listed, pages = list_all(kv, MaxResults=1, StreamNameCondition={
        "ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "doo"})
    assert [i["StreamName"] for i in listed] == ["doo-1", "door", "door-x"] and pages == 3


def test_streams_survive_a_restart(gateway_factory):
    gw = gateway_factory(extra_config=VIDEO_CONFIG, name="restart")
    kv = kvs(gw)
    kv.create_stream(StreamName="kept", DataRetentionInHours=5, MediaType="video/h264")
    v0 = describe(kv, "kept")["Version"]
    kv.update_stream(StreamName="kept", CurrentVersion=v0, DeviceName="d1")
    kv.tag_stream(StreamName="kept", Tags={"k": "v"})
    arn = kv.create_stream(StreamName="dropped")["StreamARN"]
    kv.delete_stream(StreamARN=arn)
    before = describe(kv, "kept")
    gw.restart()
    kv = kvs(gw)
    assert describe(kv, "kept") == before
    assert kv.list_tags_for_stream(StreamName="kept")["Tags"] == {"k": "v"}
    error("ResourceNotFoundException", kv.describe_stream, StreamName="dropped")
    assert [i["StreamName"] for i in list_all(kv)[0]] == ["kept"]


def test_signatures_are_checked(gateway_factory):
    gw = gateway_factory(extra_config=VIDEO_CONFIG, credentials=True,
                         env={TEST_SECRET_ENV: SECRET}, name="signed")
    good = kvs(gw, secret=SECRET)
    name = unique("signed")
    good.create_stream(StreamName=name)
    assert describe(good, name)["StreamName"] == name
    bad = kvs(gw, secret=SECRET + "x")
    with pytest.raises(ClientError) as caught:
        bad.describe_stream(StreamName=name)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 401, 403)
    r = requests.post(f"{gw.url}/listStreams", json={}, timeout=10)
    assert r.status_code in (400, 401, 403), r.text
    assert "StreamInfoList" not in r.text
    r = requests.post(f"{gw.url}/createStream", json={"StreamName": unique("u")}, timeout=10)
    assert r.status_code in (400, 401, 403), r.text
    assert [i["StreamName"] for i in list_all(good)[0]] == [name]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def test_get_data_endpoint_over_tls_is_https(gateway_factory, tmp_path):
    d = tmp_path
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=kvs test CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    gw = gateway_factory(
        extra_config=VIDEO_CONFIG + f'\n[api.tls]\ncert = "{d / "server.crt"}"\nkey = "{d / "server.key"}"\n',
        name="tls", start=False)
    gw.tls_ca = d / "ca.crt"
    gw.start()
    kv = kvs(gw)
    kv.create_stream(StreamName="over-tls")
    endpoint = kv.get_data_endpoint(StreamName="over-tls", APIName="GET_HLS_STREAMING_SESSION_URL")
    assert endpoint["DataEndpoint"] == gw.url and gw.url.startswith("https://")
