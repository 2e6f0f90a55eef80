"""tiledesk-sso-bridge: OpenID Connect sign-in for the Tiledesk chat widget."""

import warnings

from authlib.deprecate import AuthlibDeprecationWarning

# The stack is httpx (what respx mocks); Authlib 1.9 nags about httpx2 on import.
# Authlib's own "always" filter is installed by the import above, so this one goes in front.
warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
# Authlib 1.7 and 1.8 import their own deprecated authlib.jose internally; the bridge uses joserfc.
warnings.filterwarnings("ignore", "authlib.jose module is deprecated", AuthlibDeprecationWarning)

__version__ = "0.1.0"
