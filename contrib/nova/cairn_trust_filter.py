"""Nova scheduler filter: place instances only on hosts Cairn attests at a given integrity level.

A flavor asks for a level with an extra spec (either spelling):

    openstack flavor set m1.trusted --property trusted_host=ima_all_ok
    openstack flavor set m1.patched --property min_trusted_host=ima_pkg_not_security_updates
    # or scoped: cairn:trusted_host / cairn:min_trusted_host

Levels, worst first: boot_untrusted < ima_digest_not_found < ima_pkg_security_updates
< ima_pkg_not_security_updates < ima_all_ok. A flavor without either spec passes every host.

For each request the filter asks Cairn's verifier, over mutual TLS,
`GET /cairn/v1/placement?trusted_host=L` (or `min_trusted_host=L`); a host passes when its Nova
host name or node name is a qualifying host's `host_name` (give it with `cairn node add
--host-name`), address or agent id. The answer is cached for `cache_seconds` so one scheduling
pass makes one request, not one per host. If the verifier cannot be asked, no host passes (the
filter fails closed) and the reason is logged.

Enable it in nova.conf:

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = cairn_trust_filter.CairnTrustFilter
    enabled_filters = ...,CairnTrustFilter

    [cairn]
    verifier_url = https://verifier.example:8881
    client_cert = /etc/nova/cairn/client-cert.pem
    client_key = /etc/nova/cairn/client-key.pem
    ca_file = /etc/nova/cairn/ca-cert.pem

Unset options fall back to the environment variables Cairn's CLI reads: CAIRN_VERIFIER_URL,
CAIRN_CLIENT_CERT, CAIRN_CLIENT_KEY, CAIRN_CA.
"""

import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:  # inside Nova
    from nova.scheduler import filters as _filters
    from oslo_config import cfg as _cfg

    _BASE = _filters.BaseHostFilter
except ImportError:  # outside Nova (tools, docs): the same contract, no base class
    _filters = None
    _cfg = None
    _BASE = object

LOG = logging.getLogger(__name__)

LEVELS = (
    "boot_untrusted",
    "ima_digest_not_found",
    "ima_pkg_security_updates",
    "ima_pkg_not_security_updates",
    "ima_all_ok",
)

_SPEC_KEYS = (
    ("trusted_host", ("trusted_host", "cairn:trusted_host")),
    ("min_trusted_host", ("min_trusted_host", "cairn:min_trusted_host")),
)

if _cfg is not None:
    _OPTS = [
        _cfg.StrOpt("verifier_url", help="Cairn verifier tenant API, e.g. https://verifier:8881"),
        _cfg.StrOpt("client_cert", help="Client certificate (PEM) the verifier accepts"),
        _cfg.StrOpt("client_key", help="Its private key (PEM)"),
        _cfg.StrOpt("ca_file", help="CA (PEM) the verifier's certificate chains to"),
        _cfg.FloatOpt("timeout", default=5.0, help="Seconds per placement request"),
        _cfg.FloatOpt("cache_seconds", default=5.0, help="How long one placement answer is reused"),
    ]
    _cfg.CONF.register_opts(_OPTS, group="cairn")


def _conf(name, env, default=None):
    if _cfg is not None:
        try:
            value = getattr(_cfg.CONF.cairn, name)
        except (_cfg.NoSuchOptError, _cfg.ConfigFileValueError, AttributeError):
            value = None
        if value not in (None, ""):
            return value
    return os.environ.get(env, default) if env else default


def requested_level(extra_specs):
    """The (parameter, level) a flavor's extra specs ask for, or None; ValueError on a bad level."""
    for param, keys in _SPEC_KEYS:
        for key in keys:
            value = (extra_specs or {}).get(key)
            if value is None:
                continue
            value = str(value).strip()
            if value not in LEVELS:
                raise ValueError("%s=%r is not a Cairn integrity level (%s)" % (key, value, ", ".join(LEVELS)))
            return param, value
    return None


class PlacementClient(object):
    """Asks a Cairn verifier which hosts qualify, over mutual TLS, with a short cache."""

    def __init__(self, url=None, cert=None, key=None, ca=None, timeout=None, cache_seconds=None):
        self.url = (url or _conf("verifier_url", "CAIRN_VERIFIER_URL", "https://127.0.0.1:8881")).rstrip("/")
        self.cert = cert or _conf("client_cert", "CAIRN_CLIENT_CERT")
        self.key = key or _conf("client_key", "CAIRN_CLIENT_KEY")
        self.ca = ca or _conf("ca_file", "CAIRN_CA")
        self.timeout = float(timeout if timeout is not None else _conf("timeout", None, 5.0))
        self.cache_seconds = float(cache_seconds if cache_seconds is not None else _conf("cache_seconds", None, 5.0))
        self._cache = {}
        self._lock = threading.Lock()
        self._context = None

    def _ssl(self):
        if self._context is None:
            ctx = ssl.create_default_context(cafile=self.ca)
            if self.cert:
                ctx.load_cert_chain(self.cert, self.key)
            self._context = ctx
        return self._context

    def qualifying(self, param, level):
        """The set of names (host name, address, agent id) of hosts that qualify now."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((param, level))
            if hit is not None and now - hit[0] < self.cache_seconds:
                return hit[1]
        query = urllib.parse.urlencode({param: level})
        url = "%s/cairn/v1/placement?%s" % (self.url, query)
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl()) as resp:
                body = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise RuntimeError("%s: HTTP %s: %s" % (url, e.code, detail))
        names = set()
        for host in body.get("results", {}).get("hosts", []):
            for field in ("host_name", "ip", "agent_id"):
                if host.get(field):
                    names.add(host[field])
        with self._lock:
            self._cache[(param, level)] = (now, names)
        return names


class CairnTrustFilter(_BASE):
    """Passes hosts that Cairn attests at the level the flavor asks for."""

    # A rebuild keeps the instance on its host: that host must still be trusted.
    RUN_ON_REBUILD = True

    def __init__(self, client=None):
        self.client = client or PlacementClient()

    def host_passes(self, host_state, spec_obj):
        extra_specs = getattr(getattr(spec_obj, "flavor", None), "extra_specs", None) or {}
        try:
            asked = requested_level(extra_specs)
        except ValueError as e:
            LOG.warning("CairnTrustFilter: %s; no host passes", e)
            return False
        if asked is None:
            return True
        param, level = asked
        try:
            names = self.client.qualifying(param, level)
        except Exception as e:  # noqa: BLE001 - any failure to ask fails closed
            LOG.warning("CairnTrustFilter: cannot ask the Cairn verifier (%s); host %s does not pass",
                        e, getattr(host_state, "host", "?"))
            return False
        candidates = {getattr(host_state, "host", None), getattr(host_state, "nodename", None)}
        passes = bool(candidates & names)
        if not passes:
            LOG.debug("CairnTrustFilter: host %s is not at %s=%s", getattr(host_state, "host", "?"), param, level)
        return passes
