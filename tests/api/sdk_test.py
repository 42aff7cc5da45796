"""Drives `dnatsim api serve` with the official Python SDK (aliyun-python-sdk-core/-vpc).

Run by tests/api.rs (sdk_python_both_ways) with the server's address and key pair:
    python sdk_test.py HOST:PORT ACCESS_KEY_ID ACCESS_KEY_SECRET
It builds one gateway the tutorial's way (legacy BandwidthPackage.N.* through CommonRequest)
and one the current way (typed requests: AllocateEipAddress, CreateCommonBandwidthPackage,
AddCommonBandwidthPackageIp, AssociateEipAddress), gives both the same forward entries, then
on the second waits for Available, reads back, modifies and deletes. The last line printed is
a JSON summary that the Rust test checks. Any failed expectation raises (exit status 1).
"""
import json
import sys
import time
import urllib.error
import urllib.request

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.composer import rpc_signature_composer
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkvpc.request.v20160428 import (
    AddCommonBandwidthPackageIpRequest,
    AllocateEipAddressRequest,
    AssociateEipAddressRequest,
    CreateCommonBandwidthPackageRequest,
    CreateForwardEntryRequest,
    CreateNatGatewayRequest,
    DeleteForwardEntryRequest,
    DescribeCommonBandwidthPackagesRequest,
    DescribeEipAddressesRequest,
    DescribeForwardTableEntriesRequest,
    DescribeNatGatewaysRequest,
    ModifyForwardEntryRequest,
)

ENDPOINT, KEY, SECRET = sys.argv[1], sys.argv[2], sys.argv[3]
REGION = "cn-shanghai"
client = AcsClient(KEY, SECRET, REGION)


def show(title, obj):
    print("== %s" % title)
    print(json.dumps(obj, indent=2, sort_keys=True))


def typed(req, **params):
    """Sends a typed request to the local server; returns the parsed JSON answer."""
    req.set_endpoint(ENDPOINT)
    req.set_protocol_type("http")
    for k, v in params.items():
        getattr(req, "set_" + k)(v)
    return json.loads(client.do_action_with_exception(req))


def common(action, **params):
    """Sends a CommonRequest (the SDK's way to pass any parameter, e.g. the legacy ones)."""
    req = CommonRequest(domain=ENDPOINT, version="2016-04-28", action_name=action)
    req.set_protocol_type("http")
    req.set_method("POST")
    for k, v in params.items():
        req.add_query_param(k, v)
    return json.loads(client.do_action_with_exception(req))


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_available(table, entry_id):
    for _ in range(200):
        r = typed(DescribeForwardTableEntriesRequest.DescribeForwardTableEntriesRequest(),
                  ForwardTableId=table, ForwardEntryId=entry_id)
        entries = r["ForwardTableEntries"]["ForwardTableEntry"]
        expect(len(entries) == 1, "entry %s is listed once" % entry_id)
        if entries[0]["Status"] == "Available":
            return entries[0]
        time.sleep(0.05)
    raise AssertionError("entry %s never became Available" % entry_id)


# The legacy way: the tutorial's CreateNatGateway with BandwidthPackage.1.*.
legacy = common("CreateNatGateway", RegionId=REGION, VpcId="vpc-11af8lxxx", Name="legacy-gw",
                Description="the tutorial's way", **{"BandwidthPackage.1.IpCount": "2",
                                                     "BandwidthPackage.1.Bandwidth": "150",
                                                     "BandwidthPackage.1.Zone": "cn-shanghai-a"})
show("CreateNatGateway (CommonRequest, BandwidthPackage.1.*)", legacy)
packages = common("DescribeBandwidthPackages", RegionId=REGION, NatGatewayId=legacy["NatGatewayId"])
show("DescribeBandwidthPackages (CommonRequest)", packages)
legacy_ips = [ip["IpAddress"] for ip in
              packages["BandwidthPackages"]["BandwidthPackage"][0]["PublicIpAddresses"]["PublicIpAddresse"]]
expect(len(legacy_ips) == 2, "the legacy package has 2 IPs")

# The current way: a gateway, EIPs in a shared bandwidth package, associated with the gateway.
gw = typed(CreateNatGatewayRequest.CreateNatGatewayRequest(), VpcId="vpc-11af8lxxx", Name="eip-gw",
           Description="the current way")
show("CreateNatGateway (typed)", gw)
cbwp = typed(CreateCommonBandwidthPackageRequest.CreateCommonBandwidthPackageRequest(), Bandwidth=150,
             Name="shared")
show("CreateCommonBandwidthPackage", cbwp)
eip_ips = []
for _ in range(2):
    eip = typed(AllocateEipAddressRequest.AllocateEipAddressRequest(), Bandwidth="150")
    show("AllocateEipAddress", eip)
    typed(AddCommonBandwidthPackageIpRequest.AddCommonBandwidthPackageIpRequest(),
          BandwidthPackageId=cbwp["BandwidthPackageId"], IpInstanceId=eip["AllocationId"])
    typed(AssociateEipAddressRequest.AssociateEipAddressRequest(), AllocationId=eip["AllocationId"],
          InstanceId=gw["NatGatewayId"], InstanceType="Nat")
    eip_ips.append(eip["EipAddress"])
show("DescribeEipAddresses", typed(DescribeEipAddressesRequest.DescribeEipAddressesRequest(),
                                   AssociatedInstanceType="Nat", AssociatedInstanceId=gw["NatGatewayId"]))
show("DescribeCommonBandwidthPackages",
     typed(DescribeCommonBandwidthPackagesRequest.DescribeCommonBandwidthPackagesRequest(),
           BandwidthPackageId=cbwp["BandwidthPackageId"]))
gws = typed(DescribeNatGatewaysRequest.DescribeNatGatewaysRequest(), NatGatewayId=gw["NatGatewayId"])
show("DescribeNatGateways (typed)", gws)
listed = [ip["IpAddress"] for ip in gws["NatGateways"]["NatGateway"][0]["IpLists"]["IpList"]]
expect(listed == eip_ips, "the gateway lists its EIPs in order: %s" % listed)

# The same two entries on both gateways (entries go one at a time: wait for Available).
created = {}
for name, table, ips in (("legacy", legacy["ForwardTableIds"]["ForwardTableId"][0], legacy_ips),
                         ("eip", gw["ForwardTableIds"]["ForwardTableId"][0], eip_ips)):
    ids = []
    for ext, eport, proto, internal, iport in ((ips[0], "Any", "Any", "192.168.1.1", "Any"),
                                               (ips[1], "80", "TCP", "192.168.1.3", "80")):
        r = typed(CreateForwardEntryRequest.CreateForwardEntryRequest(), ForwardTableId=table,
                  ExternalIp=ext, ExternalPort=eport, IpProtocol=proto, InternalIp=internal,
                  InternalPort=iport)
        show("CreateForwardEntry (%s gateway)" % name, r)
        wait_available(table, r["ForwardEntryId"])
        ids.append(r["ForwardEntryId"])
    created[name] = (table, ids)

table, (ip_entry, port_entry) = created["eip"]
entries = typed(DescribeForwardTableEntriesRequest.DescribeForwardTableEntriesRequest(), ForwardTableId=table)
show("DescribeForwardTableEntries (eip gateway)", entries)
expect(entries["TotalCount"] == 2, "two entries read back")
expect(all(e["Status"] == "Available" for e in entries["ForwardTableEntries"]["ForwardTableEntry"]),
       "both Available")

typed(ModifyForwardEntryRequest.ModifyForwardEntryRequest(), ForwardTableId=table,
      ForwardEntryId=port_entry, ExternalPort="8080", InternalPort="8080")
modified = wait_available(table, port_entry)
show("after ModifyForwardEntry", modified)
expect(modified["ExternalPort"] == "8080" and modified["InternalPort"] == "8080", "the modification is read back")

typed(DeleteForwardEntryRequest.DeleteForwardEntryRequest(), ForwardTableId=table, ForwardEntryId=ip_entry)
left = typed(DescribeForwardTableEntriesRequest.DescribeForwardTableEntriesRequest(), ForwardTableId=table)
show("after DeleteForwardEntry", left)
expect([e["ForwardEntryId"] for e in left["ForwardTableEntries"]["ForwardTableEntry"]] == [port_entry],
       "only the modified entry is left")

# A wrong secret, through the SDK: the server answers SignatureDoesNotMatch and, as the cloud
# does, puts its string to sign in the message; the SDK sees it equals its own and reports the
# secret as wrong (InvalidAccessKeySecret). The raw answer is checked too.
bad = AcsClient(KEY, SECRET + "-wrong", REGION)
req = DescribeNatGatewaysRequest.DescribeNatGatewaysRequest()
req.set_endpoint(ENDPOINT)
req.set_protocol_type("http")
try:
    bad.do_action_with_exception(req)
    raise AssertionError("a wrong secret was accepted")
except ServerException as e:
    sdk_code, sdk_status = e.get_error_code(), e.get_http_status()
    print("== wrong secret, SDK exception: %s (HTTP %s): %s" % (sdk_code, sdk_status, e.get_error_msg()))
params = {"Action": "DescribeNatGateways", "Version": "2016-04-28", "RegionId": REGION}
url, _ = rpc_signature_composer.get_signed_url(params, KEY, SECRET + "-wrong", "JSON", "GET", {})
try:
    urllib.request.urlopen("http://" + ENDPOINT + url)
    raise AssertionError("a wrong secret was accepted")
except urllib.error.HTTPError as e:
    raw = json.loads(e.read())
    raw_status = e.code
show("wrong secret, raw answer (HTTP %d)" % raw_status, raw)
expect(raw["Code"] == "SignatureDoesNotMatch" and raw_status == 400, "refused with SignatureDoesNotMatch")
expect(sdk_code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret") and sdk_status == 400,
       "the SDK reports the refusal")

print(json.dumps({
    "legacy_gateway": legacy["NatGatewayId"], "eip_gateway": gw["NatGatewayId"],
    "legacy_ips": legacy_ips, "eip_ips": eip_ips,
    "wrong_secret": {"raw_code": raw["Code"], "sdk_code": sdk_code},
}))
