// A real OpenID Provider for the browser tests: panva's certified oidc-provider, set up like a
// Keycloak realm (issuer <origin>/realms/<realm>, one confidential client, PKCE, RS256,
// RP-initiated logout). Its own development login and consent pages are the "IdP pages".
//
// Configuration, from the environment (argv[2] may give the port):
//   OP_PORT                     port on 127.0.0.1; 0 (the default) picks a free one
//   OP_REALM                    realm name, default "acme"
//   OP_CLIENT_ID                default "bridge"
//   OP_CLIENT_SECRET            required
//   OP_REDIRECT_URIS            comma-separated, required
//   OP_POST_LOGOUT_REDIRECT_URIS comma-separated, optional
//   OP_COOP                     a Cross-Origin-Opener-Policy for every OP answer (as some IdPs
//                               send on their sign-in pages), e.g. "same-origin"; default none.
//                               POST /__test/coop with the value as body changes it at run time.
//   OP_BACKCHANNEL_LOGOUT_URI   optional: the client's back-channel logout URI (its ID tokens
//                               then carry sid, and ending the OP session posts a logout token)
// Prints one line "ready <issuer>" on stdout once listening; exits cleanly on SIGTERM/SIGINT.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const env = process.env;
const listOf = (value) => (value || '').split(',').map((s) => s.trim()).filter(Boolean);

const port = Number(process.argv[2] ?? env.OP_PORT ?? 0);
const realm = env.OP_REALM || 'acme';
const clientId = env.OP_CLIENT_ID || 'bridge';
const clientSecret = env.OP_CLIENT_SECRET;
const redirectUris = listOf(env.OP_REDIRECT_URIS);
const postLogoutRedirectUris = listOf(env.OP_POST_LOGOUT_REDIRECT_URIS);
const backchannelLogoutUri = env.OP_BACKCHANNEL_LOGOUT_URI || '';

if (!clientSecret || redirectUris.length === 0) {
  process.stderr.write('op: OP_CLIENT_SECRET and OP_REDIRECT_URIS are required\n');
  process.exit(2);
}

// The realm's users. The devInteractions login page takes any login name; it becomes the account id.
const USERS = {
  alice: {
    email: 'alice@acme.test', given_name: 'Alice', family_name: 'Liddell', groups: ['support'],
  },
  bob: {
    email: 'bob@acme.test', given_name: 'Bob', family_name: 'Builder', groups: ['sales'],
  },
  mallory: {
    email: 'mallory@evil.test', given_name: 'Mallory', family_name: 'Malice', groups: [],
  },
};

function findAccount(ctx, id) {
  const user = USERS[id];
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: user.email,
        email_verified: true,
        given_name: user.given_name,
        family_name: user.family_name,
        name: `${user.given_name} ${user.family_name}`,
        groups: user.groups,
      };
    },
  };
}

const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title></head><body><main>${body}</main></body></html>`;

// Keycloak ends the session without asking when the request carries id_token_hint, and asks
// otherwise. Same here; the button also serves browsers without JavaScript.
async function logoutSource(ctx, form) {
  const silent = Boolean(ctx.oidc.params.id_token_hint);
  const auto = silent
    ? '<script>document.getElementById("op-logout").click()</script>'
    : '';
  ctx.body = page('Logging out', `<h1>Do you want to log out of ${realm}?</h1>
${form}
<button id="op-logout" type="submit" form="op.logoutForm" name="logout" value="yes">Logout</button>
${auto}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Logged out', '<h1 id="op-logged-out">You are logged out</h1>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  ctx.body = page('Error', `<h1>OP error</h1><pre id="op-error">${esc(out.error)}: ${esc(out.error_description || '')}</pre>`);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-rs256', alg: 'RS256', use: 'sig' };

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    ...(backchannelLogoutUri ? {
      backchannel_logout_uri: backchannelLogoutUri,
      backchannel_logout_session_required: true,
    } : {}),
  }],
  jwks: { keys: [signingKey] },
  findAccount,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // Scope claims go in the ID token as well as userinfo, as Keycloak does by default.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    userinfo: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  renderError,
  // The OP's own calls (the back-channel logout POST) go to the bridge on 127.0.0.1, an
  // address oidc-provider's SSRF guard refuses by default: this test OP lets them through.
  fetch: (url, options) => fetch(url, { ...options, dispatcher: undefined }),
  ttl: {
    AccessToken: 300,
    AuthorizationCode: 60,
    IdToken: 300,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
};

const mount = `/realms/${realm}`;
let provider;
let handler;

// The provider is mounted under /realms/<realm>: strip the prefix, keep originalUrl so that
// oidc-provider builds its URLs with the mount path.
let coop = env.OP_COOP || '';
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__test/coop') {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      coop = body.trim();
      res.writeHead(204);
      res.end();
    });
    return;
  }
  if (coop) res.setHeader('Cross-Origin-Opener-Policy', coop);
  if (req.url === mount || req.url.startsWith(`${mount}/`) || req.url.startsWith(`${mount}?`)) {
    req.originalUrl = req.url;
    req.url = req.url.slice(mount.length) || '/';
    handler(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}${mount}`;
  provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => process.stderr.write(`op: server_error ${err.stack}\n`));
  provider.on('backchannel.error', (ctx, err, client) => process.stderr.write(`op: backchannel.error ${client.clientId}: ${err.message}\n`));
  provider.on('backchannel.success', (ctx, client) => process.stderr.write(`op: backchannel.success ${client.clientId}\n`));
  handler = provider.callback();
  process.stdout.write(`ready ${issuer}\n`);
});

// Everything lives in memory: nothing to flush, so stop at once.
function stop() {
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
