// Bridge to @octokit/webhooks-methods for the Python tests: reads one JSON
// request on stdin, prints one JSON answer. Payloads travel as base64 so the
// exact bytes survive; octokit 6 wants a string, so they are decoded as UTF-8.
import { sign, verify, verifyWithFallback } from "@octokit/webhooks-methods";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const payload = Buffer.from(req.payload_b64, "base64").toString("utf8");

let result;
if (req.op === "sign") {
  result = await sign(req.secret, payload);
} else if (req.op === "verify") {
  result = await verify(req.secret, payload, req.signature);
} else if (req.op === "verifyWithFallback") {
  result = await verifyWithFallback(req.secret, payload, req.signature, req.additional);
} else {
  throw new Error(`unknown op ${req.op}`);
}
process.stdout.write(JSON.stringify({ result }));
