"""CairnTrustFilter against Nova's own scheduler objects and a real Cairn verifier.

Run by Cairn's integration test (crates/cairn/tests/levels_placement.rs) in the venv of
scripts/nova-venv.sh, with the verifier's address and the tenant's certificate in
CAIRN_VERIFIER_URL / CAIRN_CLIENT_CERT / CAIRN_CLIENT_KEY / CAIRN_CA, and in CAIRN_TEST_HOSTS the
hosts the verifier attests now: {"host name": "level" or null (does not qualify)}.
"""

import json
import os
import sys
import unittest
import warnings

warnings.simplefilter("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nova import objects  # noqa: E402
from nova.scheduler import filters, host_manager  # noqa: E402

import cairn_trust_filter as ctf  # noqa: E402

objects.register_all()

CELL = "00000000-0000-0000-0000-000000000001"


def spec(extra_specs):
    return objects.RequestSpec(flavor=objects.Flavor(extra_specs=extra_specs), scheduler_hints={})


class CairnTrustFilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.expected = json.loads(os.environ["CAIRN_TEST_HOSTS"])
        names = sorted(cls.expected) + ["compute-not-attested"]
        cls.hosts = [host_manager.HostState(n, n + ".node", CELL) for n in names]

    def passing(self, extra_specs, filt=None):
        filt = filt or ctf.CairnTrustFilter()
        self.assertIsInstance(filt, filters.BaseHostFilter)
        return sorted(h.host for h in filt.filter_all(self.hosts, spec(extra_specs)))

    def test_min_trusted_host_passes_hosts_at_that_level_or_better(self):
        for i, level in enumerate(ctf.LEVELS):
            want = sorted(h for h, l in self.expected.items() if l is not None and ctf.LEVELS.index(l) >= i)
            self.assertEqual(self.passing({"min_trusted_host": level}), want, level)

    def test_trusted_host_passes_hosts_at_exactly_that_level(self):
        for level in ctf.LEVELS:
            want = sorted(h for h, l in self.expected.items() if l == level)
            self.assertEqual(self.passing({"trusted_host": level}), want, level)
            self.assertEqual(self.passing({"cairn:trusted_host": level}), want, "scoped " + level)

    def test_a_flavor_that_asks_nothing_passes_every_host(self):
        self.assertEqual(self.passing({}), sorted(h.host for h in self.hosts))

    def test_a_misspelt_level_passes_no_host(self):
        self.assertEqual(self.passing({"min_trusted_host": "ima_al_ok"}), [])

    def test_an_unreachable_verifier_passes_no_host(self):
        client = ctf.PlacementClient(url="https://127.0.0.1:9", timeout=2)
        self.assertEqual(self.passing({"min_trusted_host": "boot_untrusted"}, ctf.CairnTrustFilter(client)), [])

    def test_one_request_serves_a_whole_scheduling_pass(self):
        client = ctf.PlacementClient()
        calls = []
        real = ctf.urllib.request.urlopen

        def counting(*a, **kw):
            calls.append(a[0].full_url)
            return real(*a, **kw)

        ctf.urllib.request.urlopen = counting
        try:
            self.passing({"min_trusted_host": "ima_digest_not_found"}, ctf.CairnTrustFilter(client))
        finally:
            ctf.urllib.request.urlopen = real
        self.assertEqual(len(calls), 1, calls)


if __name__ == "__main__":
    unittest.main(verbosity=2)
