// openid-client (panva, pinned in package.json / package-lock.json) drives Tollgate's device
// flow (RFC 8628) and a token exchange (RFC 8693) as a real client would. Run by
// tests/third_party.rs, which installs the package, approves the user code on /device and
// checks what this prints.
//
//   node device_and_exchange.mjs ISSUER CLIENT_ID CLIENT_SECRET DEVICE_SCOPE EXCHANGE_SCOPE AUDIENCE
//
// Prints `USER_CODE <code>` once the device authorization has started, then one line
// `RESULT <json>` with the device grant's tokens and the exchange's answer.
import * as client from 'openid-client';

const [issuer, clientId, clientSecret, deviceScope, exchangeScope, audience] =
    process.argv.slice(2);
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

// The test server is plain HTTP on 127.0.0.1.
const config = await client.discovery(
    new URL(issuer),
    clientId,
    undefined,
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests] },
);

const started = await client.initiateDeviceAuthorization(config, { scope: deviceScope });
console.log(`USER_CODE ${started.user_code}`);

// Polls at the server's interval (and slows down when told) until the user decides.
const device = await client.pollDeviceAuthorizationGrant(config, started);

const exchanged = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
    subject_token: device.access_token,
    subject_token_type: ACCESS_TOKEN,
    requested_token_type: ACCESS_TOKEN,
    scope: exchangeScope,
    audience,
});

console.log(
    `RESULT ${JSON.stringify({
        verification_uri: started.verification_uri,
        device: {
            access_token: device.access_token,
            token_type: device.token_type,
            scope: device.scope,
            refresh_token: device.refresh_token,
            // openid-client validated the ID token's claims (iss, aud, exp, iat) before this.
            id_token_claims: device.claims() ?? null,
        },
        exchanged: {
            access_token: exchanged.access_token,
            token_type: exchanged.token_type,
            issued_token_type: exchanged.issued_token_type,
            scope: exchanged.scope,
            expires_in: exchanged.expires_in,
            refresh_token: exchanged.refresh_token ?? null,
        },
    })}`,
);
