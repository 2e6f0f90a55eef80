-- wrk script for POST /auth, as the widget page sends it: a same-origin fetch with the
-- session cookie. BENCH_COOKIE and BENCH_ORIGIN give the headers.
wrk.method = "POST"
wrk.headers["Accept"] = "application/json"
wrk.headers["Origin"] = os.getenv("BENCH_ORIGIN")
wrk.headers["Sec-Fetch-Site"] = "same-origin"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
