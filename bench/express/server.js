// The shape of Tiledesk's tutorial backend: POST /auth signs the user's custom JWT (HS256)
// with the project secret on every call. The bench serves it as the yardstick for /auth.
//
// Environment: BENCH_PORT, BENCH_SECRET, BENCH_PROJECT_ID, BENCH_USER (the JSON "user"
// object the bridge answers for the same sign-in, so both sign the same payload).
"use strict";

const crypto = require("node:crypto");
const express = require("express");
const jwt = require("jsonwebtoken");

const port = Number(process.env.BENCH_PORT);
const secret = process.env.BENCH_SECRET;
const projectId = process.env.BENCH_PROJECT_ID;
const user = JSON.parse(process.env.BENCH_USER);
const ttl = 8 * 3600;

const app = express();
app.disable("x-powered-by");

app.post("/auth", (req, res) => {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    _id: user._id,
    sub: "userexternal",
    aud: `https://tiledesk.com/projects/${projectId}`,
    attributes: user.attributes || {},
    iat: now,
    exp: now + ttl,
    jti: crypto.randomUUID(),
  };
  for (const key of ["firstname", "lastname", "email"]) {
    if (user[key]) payload[key] = user[key];
  }
  const token = jwt.sign(payload, secret, { algorithm: "HS256" });
  res.set("Cache-Control", "no-store");
  res.json({ token: "JWT " + token, expires_at: payload.exp, user });
});

app.listen(port, "127.0.0.1", () => {
  console.log(`express bench backend on 127.0.0.1:${port}`);
});
