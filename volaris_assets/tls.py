"""The one verifying TLS context of a process, shared by every HTTP client it builds.

Left to itself httpx builds a context per client, loading certifi's ~150 CA certificates each
time: 23 ms of CPU and 0.8-2.9 MB that OpenSSL keeps after the client closes (httpx 0.29,
measured on the 2-core host). A run builds a client for each provider it asks; the daemon
builds one on its light lane for every quotes refresh and one for every Discord post.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The context httpx would have built (`create_ssl_context()`: certifi's bundle, or
    SSL_CERT_FILE / SSL_CERT_DIR where set when the process builds its first client), built
    once: an `SSLContext` may be shared by clients and threads."""
    return httpx.create_ssl_context()
