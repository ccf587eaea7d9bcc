"""Geography on one machine: loopback blocks placed in countries.

The kernel routes all of 127.0.0.0/8 to loopback, so a client that binds 127.0.1.5 and a server
on 127.0.2.9 talk over loopback while a country database built by geoproxy itself (at test time,
with `geoproxy geodb build` from a CIDR overlay) says the first is in Hong Kong and the second
in Switzerland. The test DNS server (harness.Dnsmasq) also answers <cc>.geo.test with the .9
address of each block, and split.geo.test and split-cn-first.geo.test with two addresses in two
countries (CH and CN, in both orders).
"""

import os

from clients import geoproxy_bin, run

# Country -> its loopback /24. Addresses inside: .5 for clients, .9 for servers.
BLOCKS = {
    "HK": "127.0.1.0/24",
    "CH": "127.0.2.0/24",
    "CN": "127.0.3.0/24",
    "DE": "127.0.4.0/24",
    "US": "127.0.5.0/24",
    "GB": "127.0.6.0/24",
    "JP": "127.0.7.0/24",
}
# A block the database does not map: local, but no country.
UNMAPPED_CLIENT = "127.0.9.5"


def client_addr(cc):
    """The address a client "in" country cc binds."""
    return BLOCKS[cc].rsplit(".", 1)[0] + ".5"


def server_addr(cc):
    """The address a server "in" country cc listens on."""
    return BLOCKS[cc].rsplit(".", 1)[0] + ".9"


def dns_host_records():
    """dnsmasq --host-record values for the fixture names. dnsmasq keeps one IPv4 address per
    --host-record, so a name with two addresses takes two records (answered in this order)."""
    records = [f"{cc.lower()}.geo.test,{server_addr(cc)}" for cc in BLOCKS]
    records += [f"split.geo.test,{server_addr('CH')}", f"split.geo.test,{server_addr('CN')}"]
    records += [f"split-cn-first.geo.test,{server_addr('CN')}",
                f"split-cn-first.geo.test,{server_addr('CH')}"]
    return records


def overlay_text(blocks=None):
    """A CIDR overlay file mapping each block to its country."""
    blocks = BLOCKS if blocks is None else blocks
    return "".join(f"{cidr} {cc}\n" for cc, cidr in blocks.items())


def build_geodb(testcase, path, blocks=None):
    """Builds a country database at path (atomically replacing any file there, as geoipupdate
    does) with geoproxy's own builder; fails the test if the build fails."""
    overlay = path + ".overlay"
    with open(overlay, "w", encoding="utf-8") as f:
        f.write(overlay_text(blocks))
    r = run([geoproxy_bin(), "geodb", "build", "-o", path, overlay])
    os.unlink(overlay)
    testcase.assertEqual(r.returncode, 0, f"geodb build failed: {r.stderr!r}")
    return path


def replace_file_atomically(path, data):
    """Writes data next to path and renames it over path (readers see old or new, whole)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
