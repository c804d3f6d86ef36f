// A real OpenID Connect provider (npm oidc-provider, a certified
// implementation) for the black-box auth tests, on loopback only.
//
//   node provider.mjs [--audience URI] [--max-age SECONDS]
//
// It listens on 127.0.0.1 (a free port) and prints one JSON line on stdout
// once it serves: {"port": N, "issuer": "http://127.0.0.1:N", "clients": {...}}.
// Two confidential clients get client-credentials JWT access tokens for the
// audience (a resource indicator, RFC 8707): "rs-client" signed RS256,
// "es-client" signed ES256, each with its own key in the provider's JWKS.
//
// Test-only admin endpoints (POST, JSON answers), for key rotation and
// failure injection:
//   /admin/rotate   new RS256 and ES256 signing keys; the old ones stay
//                   published (as an identity provider does while rotating)
//   /admin/retire   publish only the current signing keys
//   /admin/config   body {"max_age": N, "fail": bool}: Cache-Control of
//                   /jwks, and whether /jwks answers 503
//   /admin/stats    {"jwks_requests": N, "kids": {...}}
// Stop it with SIGTERM.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

// stdout carries the one ready line; oidc-provider's notices go to stderr.
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const args = process.argv.slice(2);
function arg(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

const audience = arg('--audience', 'https://api.test');
const state = {
  maxAge: Number(arg('--max-age', '300')),
  fail: false,
  jwksRequests: 0,
  keys: [], // private JWKs, newest first
  signing: {}, // alg -> kid
};
const clients = {
  'rs-client': { secret: 'rs-client-secret-0123456789abcdef', alg: 'RS256' },
  'es-client': { secret: 'es-client-secret-0123456789abcdef', alg: 'ES256' },
};

function newKey(alg) {
  const kid = `${alg.toLowerCase()}-${randomUUID()}`;
  const { privateKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function rotate() {
  for (const alg of ['RS256', 'ES256']) {
    const key = newKey(alg);
    state.keys.unshift(key);
    state.signing[alg] = key.kid;
  }
}

let provider;
let handler;

function makeProvider(issuer) {
  const p = new Provider(issuer, {
    clients: Object.entries(clients).map(([id, c]) => ({
      client_id: id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: state.keys },
    ttl: { ClientCredentials: 300 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resourceIndicator, client) {
          if (resourceIndicator !== audience) {
            throw new Error(`unknown resource ${resourceIndicator}`);
          }
          const alg = clients[client.clientId].alg;
          return {
            scope: 'users:read users:write',
            audience,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg, kid: state.signing[alg] } },
          };
        },
      },
    },
  });
  p.use(async (ctx, next) => {
    if (ctx.path === '/jwks') {
      state.jwksRequests += 1;
      if (state.fail) {
        ctx.status = 503;
        ctx.body = 'unavailable';
        return;
      }
    }
    await next();
    if (ctx.path === '/jwks') {
      ctx.set('cache-control', `public, max-age=${state.maxAge}`);
    }
  });
  p.on('server_error', (ctx, err) => console.error('oidc server_error', err));
  return p;
}

function readJson(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch {
        resolve({});
      }
    });
  });
}

async function admin(req, res, issuer) {
  const send = (obj) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  switch (req.url) {
    case '/admin/rotate':
      rotate();
      break;
    case '/admin/retire':
      state.keys = state.keys.filter((k) => Object.values(state.signing).includes(k.kid));
      break;
    case '/admin/config': {
      const body = await readJson(req);
      if (typeof body.max_age === 'number') state.maxAge = body.max_age;
      if (typeof body.fail === 'boolean') state.fail = body.fail;
      break;
    }
    case '/admin/stats':
      break;
    default:
      res.writeHead(404).end();
      return;
  }
  if (req.url === '/admin/rotate' || req.url === '/admin/retire') {
    provider = makeProvider(issuer);
    handler = provider.callback();
  }
  send({
    jwks_requests: state.jwksRequests,
    signing: state.signing,
    published: state.keys.map((k) => k.kid),
  });
}

rotate();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    admin(req, res, server.issuer).catch((e) => {
      console.error(e);
      res.writeHead(500).end();
    });
    return;
  }
  handler(req, res);
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  server.issuer = `http://127.0.0.1:${port}`;
  provider = makeProvider(server.issuer);
  handler = provider.callback();
  const out = Object.fromEntries(Object.entries(clients).map(([id, c]) => [id, c.secret]));
  process.stdout.write(`${JSON.stringify({ port, issuer: server.issuer, audience, clients: out })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
