// Tiledesk SSO bridge: the drop-in script for a website listed in the bridge's [sites].
//
//   <script src="https://chat.acme.com/embed.js" async></script>
//
// It loads Tiledesk's widget (autoStart: false, the bridge's widget settings under the page's
// own window.tiledeskSettings), signs it in with a token from POST /auth, and offers sign-in
// when the visitor is not signed in. Sign-in runs in a popup (or, with data-mode="redirect" or
// when the popup is blocked, in this tab) and ends on this very page with a one-time handle in
// the URL fragment, which this script redeems with POST /auth and a verifier only it holds.
// The popup hands the handle to this page through a BroadcastChannel of this origin, so a
// Cross-Origin-Opener-Policy anywhere on the way (which cuts window.opener) does not matter.
//
// Script attributes: data-mode="popup|redirect", data-provider="NAME", data-lang="it" (the words
// shown, by default in the page's <html lang>, else the browser's language).
// Page elements: [data-tiledesk-signin] (value: a provider, optional) and [data-tiledesk-signout]
// become the sign-in and sign-out controls; without a sign-in element the script shows its own.
// API: window.TiledeskBridge.signIn(provider?), .signOut(), .onChange(fn) -> unsubscribe, .state.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src || window.TiledeskBridge) return;

  var BRIDGE = new URL(script.src).origin;
  var SCOPE = "tiledesk-bridge:" + BRIDGE;
  var STORED = SCOPE + ":token";
  var VERIFIER = SCOPE + ":verifier";
  var RELAY = SCOPE + ":result";
  var SIGNED_IN_WIDGET = SCOPE + ":widget";  // "1" while the widget holds an identity we gave it
  var MESSAGE = "tiledesk-bridge:result";
  var POPUP_GRACE_MS = 2000;      // popup.closed lies under COOP: "maybe closed" until then
  var FLOW_MS = 10 * 60 * 1000;   // how long a late result is still taken (the bridge's flow TTL)
  var REFRESH_MARGIN_S = 120;     // get a fresh token this long before exp
  var AUTH_TIMEOUT_MS = 15000;
  var data = script.dataset || {};
  var mode = data.mode === "redirect" ? "redirect" : "popup";

  var landing = readFragment();
  if (landing && landing.mode === "popup") {
    relayFromPopup(landing);
    return;
  }

  var config = null;
  var listeners = [];
  var state = { status: "loading", user: null, error: null };
  var current = null;     // {token, expiresAt, user, stored}
  var pending = null;     // a sign-in under way: {verifier, popup, closedSince, timer, deadline}
  var next = null;        // {verifier, challenge} made ahead, so the popup opens within the click
  var spent = {};         // handles already taken
  var refreshTimer = null;
  var signingOut = false;
  var ownButton = null;
  var ownStatus = null;

  // --- state and listeners --------------------------------------------------------------------

  function snapshot() {
    var message = state.error && config && state.status !== "error" ? errorText(state.error) : null;
    return { status: state.status, user: state.user, error: state.error, message: message };
  }

  function setState(status, fields) {
    var user = (fields && fields.user) || null;
    var error = (fields && fields.error) || null;
    if (status === state.status && error === state.error && JSON.stringify(user) === JSON.stringify(state.user)) return;
    state.status = status;
    state.user = user;
    state.error = error;
    render();
    var view = snapshot();
    listeners.slice().forEach(function (fn) {
      try { fn(view); } catch (e) { setTimeout(function () { throw e; }); }
    });
    // For a page that listens before this script has run.
    document.dispatchEvent(new CustomEvent("tiledesk-bridge:change", { detail: view }));
  }

  function render() {
    if (!ownButton) return;
    var out = state.status === "signed-out";
    ownButton.hidden = !out;
    // A site the bridge does not serve shows its visitors nothing (the console says why).
    ownStatus.hidden = !state.error || state.status === "error";
    ownStatus.textContent = state.error && config ? errorText(state.error) : "";
    if (config) ownButton.textContent = config.messages.signIn;
  }

  // Every word a visitor reads comes from the bridge, in the page's or the browser's language.
  function errorText(code) {
    var words = config.messages;
    return words.errors[code] || words.otherError.replace("{code}", code);
  }

  function configPath() {
    var lang = data.lang || document.documentElement.getAttribute("lang") || "";
    return "/embed/config" + (lang ? "?lang=" + encodeURIComponent(lang.slice(0, 35)) : "");
  }

  // --- the landing: a sign-in's result in this page's fragment --------------------------------

  function readFragment() {
    var hash = window.location.hash;
    if (hash.indexOf("#tdb_") !== 0) return null;
    var params = new URLSearchParams(hash.slice(1));
    // Out of the address bar and the history at once: the handle is single-use anyway.
    history.replaceState(history.state, "", location.pathname + location.search);
    var result = { mode: params.get("tdb_mode"), handle: params.get("tdb_handle"), error: params.get("tdb_error") };
    return result.handle || result.error ? result : null;
  }

  function relayFromPopup(result) {
    var message = { type: MESSAGE, handle: result.handle, error: result.error };
    try {
      var channel = new BroadcastChannel(SCOPE);
      channel.postMessage(message);
      setTimeout(function () { channel.close(); }, 1000);
    } catch (e) {
      try {  // no BroadcastChannel: the storage event reaches the other pages of this origin
        localStorage.setItem(RELAY, JSON.stringify(message));
        localStorage.removeItem(RELAY);
      } catch (e2) { /* nothing else to try */ }
    }
    try {
      if (window.opener && window.opener !== window) window.opener.postMessage(message, location.origin);
    } catch (e) { /* cut by Cross-Origin-Opener-Policy: the channel carries it */ }
    setTimeout(function () { window.close(); }, 150);
    // Where the browser keeps the window open (it was not opened by this page any more, after
    // the IdP's pages), say that it may be closed, in the visitor's language.
    call("GET", configPath(), { credentials: "omit" }).then(function (answer) {
      if (answer.status !== 200 || !answer.body.messages) return;
      var note = document.createElement("p");
      note.id = "tiledesk-bridge-popup-done";
      note.setAttribute("role", "status");
      note.textContent = result.error ? answer.body.messages.popupFailed : answer.body.messages.popupDone;
      styleBox(note, "50%");
      function show() { document.body.appendChild(note); }
      if (document.body) show(); else document.addEventListener("DOMContentLoaded", show);
    }, function () { /* the window closes, or shows the site's page */ });
  }

  // --- talking to the bridge -------------------------------------------------------------------

  function call(method, path, options) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller && setTimeout(function () { controller.abort(); }, AUTH_TIMEOUT_MS);
    var init = {
      method: method,
      mode: "cors",
      credentials: options.credentials,
      headers: { "Accept": "application/json" },
      signal: controller ? controller.signal : undefined
    };
    if (options.json) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    return fetch(BRIDGE + path, init).then(function (response) {
      clearTimeout(timer);
      return response.json().then(function (body) {
        return { status: response.status, body: body };
      }, function () { return { status: response.status, body: {} }; });
    }, function (error) {
      clearTimeout(timer);
      throw error;
    });
  }

  // POST /auth with the bridge's cookie, where the browser sends it (same site, or SameSite=None
  // with third-party cookies allowed).
  function authWithCookie() {
    return call("POST", "/auth", { credentials: "include" });
  }

  // --- the site's own storage: the Tiledesk token (never the bridge session), until its exp -----

  function loadStored() {
    try {
      var item = JSON.parse(localStorage.getItem(STORED) || "null");
      if (item && typeof item.token === "string" && item.expiresAt - now() > REFRESH_MARGIN_S) return item;
    } catch (e) { /* unreadable: as if absent */ }
    clearStored();
    return null;
  }

  function store(item) {
    try { localStorage.setItem(STORED, JSON.stringify(item)); } catch (e) { /* private mode */ }
  }

  function clearStored() {
    try { localStorage.removeItem(STORED); } catch (e) { /* nothing stored */ }
  }

  function now() {
    return Math.floor(Date.now() / 1000);
  }

  // --- the widget --------------------------------------------------------------------------------

  function loadWidget() {
    var own = window.tiledeskSettings || {};
    var settings = {};
    var key;
    for (key in config.tiledeskSettings) settings[key] = config.tiledeskSettings[key];
    for (key in own) settings[key] = own[key];
    settings.projectid = config.tiledeskSettings.projectid;
    settings.autoStart = false;
    // With autoStart false the widget shows its launcher, and a click on it signs an anonymous
    // guest in: where sign-in is required, the launcher only appears once signed in.
    if (config.signIn === "required") settings.startHidden = true;
    window.tiledeskSettings = settings;
    // Tiledesk's loader: a queueing stub, then the script whose id must be tiledesk-jssdk.
    (function (d, s, id) {
      var i = function () { i.c(arguments); };
      i.q = [];
      i.c = function (args) { i.q.push(args); };
      window.Tiledesk = i;
      if (d.getElementById(id)) return;
      var js = d.createElement(s);
      js.id = id;
      js.async = true;
      js.src = config.widgetUrl;
      var first = d.getElementsByTagName(s)[0];
      first.parentNode.insertBefore(js, first);
    })(document, "script", "tiledesk-jssdk");

    window.Tiledesk("onAuthStateChanged", function (event) {
      var detail = (event && event.detail) || {};
      if (!detail.isLogged && current && !signingOut && state.status === "signed-in") {
        // The widget dropped the identity (a refused or expired token): fetch a fresh one once.
        current = null;
        refresh(false);
      }
    });
  }

  // A call queued before the widget starts loses its return value, and with it the refusal of
  // a stale token; so sign in through the widget's own object once it exists.
  function whenWidgetReady(fn) {
    if (window.tiledesk && typeof window.tiledesk.signInWithCustomToken === "function") fn();
    else window.Tiledesk("onBeforeInit", fn);
  }

  function widgetLogout() {
    try {
      var result = window.Tiledesk("logout");
      if (result && typeof result.then === "function") return result.then(null, function () {});
    } catch (e) { /* the widget is gone */ }
    return Promise.resolve();
  }

  function remember(key, on) {
    try {
      if (on) localStorage.setItem(key, "1");
      else localStorage.removeItem(key);
    } catch (e) { /* no storage */ }
  }

  function remembered(key) {
    try { return localStorage.getItem(key) === "1"; } catch (e) { return false; }
  }

  function useToken(item, retried) {
    current = item;
    remember(SIGNED_IN_WIDGET, true);
    if (item.stored) store({ token: item.token, expiresAt: item.expiresAt, user: item.user });
    else clearStored();
    scheduleRefresh(item.expiresAt);
    whenWidgetReady(function () {
      var result = window.tiledesk.signInWithCustomToken(item.token);
      if (result && typeof result.then === "function") {
        result.then(function () {
          if (current === item) setState("signed-in", { user: item.user });
        }, function () {
          if (current !== item) return;
          current = null;
          clearStored();
          if (!retried) refresh(true);
          else setState("signed-out", { error: "sign_in_failed" });
        });
      } else {
        setState("signed-in", { user: item.user });
      }
    });
  }

  function scheduleRefresh(expiresAt) {
    clearTimeout(refreshTimer);
    var wait = Math.max(30, expiresAt - now() - REFRESH_MARGIN_S) * 1000;
    refreshTimer = setTimeout(function () { refresh(false, true); }, Math.min(wait, 2147483000));
  }

  // "required": the widget holds no identity at all. "offered": the widget's own launcher
  // makes an anonymous guest when opened, and that guest is left alone from page to page;
  // only an identity this script gave the widget is taken back.
  function signedOut(error) {
    current = null;
    clearStored();
    clearTimeout(refreshTimer);
    var offered = config && config.signIn === "offered";
    var hadIdentity = remembered(SIGNED_IN_WIDGET);
    remember(SIGNED_IN_WIDGET, false);
    if (!offered || hadIdentity) widgetLogout();
    setState("signed-out", { error: error });
  }

  // A fresh token while the bridge session lives; the stored one until its exp where the cookie
  // cannot be sent; signed out otherwise (never a stale identity left on a shared computer).
  function refresh(retried, expiring) {
    return authWithCookie().then(function (answer) {
      if (answer.status === 200 && answer.body.token) {
        useToken({ token: answer.body.token, expiresAt: answer.body.expires_at, user: answer.body.user, stored: false }, retried);
        return;
      }
      var stored = expiring ? null : loadStored();
      if (answer.status === 401 && stored && !retried) {
        useToken({ token: stored.token, expiresAt: stored.expiresAt, user: stored.user, stored: true }, true);
        return;
      }
      signedOut(answer.status === 403 ? "unavailable" : null);
    }, function () {
      var stored = expiring ? null : loadStored();
      if (stored) useToken({ token: stored.token, expiresAt: stored.expiresAt, user: stored.user, stored: true }, true);
      else setState("signed-out", { error: "unavailable" });
    });
  }

  // --- sign-in -----------------------------------------------------------------------------------

  function base64url(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Like PKCE: the handle in the fragment is worth nothing without the verifier this page keeps.
  function prepare() {
    var verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)).then(function (hash) {
      next = { verifier: verifier, challenge: base64url(new Uint8Array(hash)) };
      return next;
    });
  }

  // The page to come back to: the bridge takes up to 512 characters (it rides in a cookie).
  function thisPage() {
    var page = location.origin + location.pathname + location.search;
    if (page.length > 512) page = location.origin + location.pathname;
    return page.length > 512 ? location.origin + "/" : page;
  }

  function loginUrl(provider, how, challenge) {
    var page = thisPage();
    var query = new URLSearchParams({ return_to: page, mode: how, challenge: challenge });
    return BRIDGE + (provider ? "/login/" + encodeURIComponent(provider) : "/login") + "?" + query;
  }

  function chosenProvider(provider) {
    if (provider) return provider;
    if (data.provider) return data.provider;
    if (config && config.providers.length === 1) return config.providers[0].name;
    return null;  // the bridge's chooser, limited to this site's providers
  }

  function signIn(provider) {
    provider = chosenProvider(provider);
    var keys = next;
    next = null;
    if (mode === "redirect") {
      if (keys) redirectTo(provider, keys);
      else prepare().then(function (made) { next = null; redirectTo(provider, made); });
      return;
    }
    // Opened right here, inside the visitor's click: a popup blocker lets it through.
    var features = "popup,width=520,height=680,left=" + Math.max(0, (screen.width - 520) / 2) + ",top=" + Math.max(0, (screen.height - 680) / 3);
    var popup = window.open(keys ? loginUrl(provider, "popup", keys.challenge) : "about:blank", "tiledesk-bridge-signin", features);
    if (!popup) {
      if (keys) redirectTo(provider, keys);
      else prepare().then(function (made) { next = null; redirectTo(provider, made); });
      return;
    }
    if (keys) {
      watch(popup, keys);
    } else {
      prepare().then(function (made) {
        next = null;
        popup.location.href = loginUrl(provider, "popup", made.challenge);
        watch(popup, made);
      });
    }
    prepare();
  }

  function redirectTo(provider, keys) {
    try {
      sessionStorage.setItem(VERIFIER, keys.verifier);
    } catch (e) { /* without storage the handle cannot be redeemed: the page shows signed out */ }
    setState("signing-in", null);
    location.assign(loginUrl(provider, "redirect", keys.challenge));
  }

  function watch(popup, keys) {
    stopWatching();
    pending = { verifier: keys.verifier, popup: popup, closedSince: 0, deadline: Date.now() + FLOW_MS };
    setState("signing-in", null);
    pending.timer = setInterval(function () {
      if (!pending) return;
      if (Date.now() > pending.deadline) {
        // The bridge has forgotten the flow by now: whatever happened, it is over.
        stopWatching();
        if (state.status === "signing-in") setState("signed-out", { error: "timeout" });
        return;
      }
      var closed = true;
      try { closed = popup.closed; } catch (e) { /* as closed */ }
      if (!closed) {
        pending.closedSince = 0;
      } else if (!pending.closedSince) {
        pending.closedSince = Date.now();
      } else if (Date.now() - pending.closedSince > POPUP_GRACE_MS && state.status === "signing-in") {
        // Closed by the visitor, or only looking closed (COOP): say so, but keep listening for
        // a late result until the flow would have expired at the bridge.
        setState("signed-out", { error: "popup_closed" });
      }
    }, 250);
  }

  function stopWatching() {
    if (pending) clearInterval(pending.timer);
    pending = null;
  }

  function onResult(message) {
    if (!message || message.type !== MESSAGE || !pending) return;
    if (message.handle && spent[message.handle]) return;
    var verifier = pending.verifier;
    var popup = pending.popup;
    stopWatching();
    try { popup.close(); } catch (e) { /* cut by COOP: it closes itself */ }
    if (message.error || !message.handle) {
      signedOut(String(message.error || "sign_in_failed").slice(0, 64));
      return;
    }
    spent[message.handle] = true;
    redeem(message.handle, verifier);
  }

  function redeem(handle, verifier) {
    setState("signing-in", null);
    call("POST", "/auth", { credentials: "omit", json: { handle: handle, verifier: verifier } }).then(function (answer) {
      if (answer.status !== 200 || !answer.body.token) {
        signedOut("sign_in_failed");
        return null;
      }
      // Will the bridge's cookie come along next time? Then nothing needs storing on this site.
      return authWithCookie().then(function (probe) { return probe.status === 200; }, function () { return false; })
        .then(function (cookieWorks) {
          var body = answer.body;
          useToken({ token: body.token, expiresAt: body.expires_at, user: body.user, stored: !cookieWorks }, false);
        });
    }, function () {
      signedOut("unavailable");
    });
  }

  // --- sign-out ----------------------------------------------------------------------------------

  function signOut() {
    signingOut = true;
    var hadStored = Boolean(current && current.stored) || Boolean(loadStored());
    current = null;
    clearStored();
    clearTimeout(refreshTimer);
    var page = thisPage();
    return widgetLogout().then(function () {
      return call("POST", "/logout?" + new URLSearchParams({ return_to: page }), { credentials: "include" });
    }).then(function (answer) {
      signingOut = false;
      setState("signed-out", null);
      if (answer.status === 200 && answer.body.redirect) {
        // The IdP ends its session too, and its post-logout redirect brings the visitor back here.
        location.assign(answer.body.redirect);
      } else if (answer.status === 200 && !answer.body.signed_out && hadStored) {
        // The bridge's cookie could not come along: end the session in a top-level visit.
        location.assign(BRIDGE + "/logout/site?" + new URLSearchParams({ return_to: page }));
      }
    }, function () {
      signingOut = false;
      setState("signed-out", null);
    });
  }

  // --- controls on the page ----------------------------------------------------------------------

  function styleBox(element, right) {
    var s = element.style;
    s.position = "fixed";
    s.zIndex = "2147483000";
    s.right = right === "50%" ? "auto" : "20px";
    s.left = right === "50%" ? "50%" : "auto";
    s.top = right === "50%" ? "40%" : "auto";
    s.bottom = right === "50%" ? "auto" : "96px";
    s.transform = right === "50%" ? "translateX(-50%)" : "none";
    s.font = "15px/1.4 system-ui, sans-serif";
    s.padding = "10px 14px";
    s.borderRadius = "8px";
    s.background = "#fff";
    s.color = "#1b1f24";
    s.boxShadow = "0 2px 10px rgba(0,0,0,.25)";
    s.margin = "0";
    s.maxWidth = "min(320px, calc(100vw - 40px))";
  }

  function bindControls() {
    var own = document.querySelectorAll("[data-tiledesk-signin]");
    Array.prototype.forEach.call(own, function (element) {
      element.addEventListener("click", function (event) {
        event.preventDefault();
        signIn(element.getAttribute("data-tiledesk-signin") || undefined);
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-tiledesk-signout]"), function (element) {
      element.addEventListener("click", function (event) {
        event.preventDefault();
        signOut();
      });
    });
    if (own.length) return;
    var box = document.createElement("div");
    box.id = "tiledesk-bridge";
    styleBox(box);
    ownButton = document.createElement("button");
    ownButton.type = "button";
    ownButton.id = "tiledesk-bridge-signin";
    ownButton.hidden = true;
    var b = ownButton.style;
    b.font = "inherit";
    b.fontWeight = "600";
    b.cursor = "pointer";
    b.border = "0";
    b.borderRadius = "6px";
    b.padding = "8px 14px";
    b.background = "#1f5fbf";
    b.color = "#fff";
    ownButton.addEventListener("click", function () { signIn(); });
    ownStatus = document.createElement("p");
    ownStatus.id = "tiledesk-bridge-status";
    ownStatus.setAttribute("role", "status");
    ownStatus.hidden = true;
    ownStatus.style.margin = "8px 0 0";
    box.appendChild(ownButton);
    box.appendChild(ownStatus);
    document.body.appendChild(box);
    // Only while there is something to show.
    var update = function () { box.hidden = ownButton.hidden && ownStatus.hidden; };
    listeners.push(update);
    render();
    update();
  }

  // --- start -------------------------------------------------------------------------------------

  window.TiledeskBridge = {
    signIn: signIn,
    signOut: signOut,
    onChange: function (fn) {
      if (typeof fn !== "function") return function () {};
      listeners.push(fn);
      if (state.status !== "loading") {
        try { fn(snapshot()); } catch (e) { setTimeout(function () { throw e; }); }
      }
      return function () {
        var at = listeners.indexOf(fn);
        if (at >= 0) listeners.splice(at, 1);
      };
    },
    get state() { return snapshot(); }
  };

  if (typeof BroadcastChannel === "function") {
    new BroadcastChannel(SCOPE).onmessage = function (event) { onResult(event.data); };
  }
  window.addEventListener("storage", function (event) {
    if (event.key === STORED && config) {
      // Another tab of this site signed in or out where only the site's storage knows it.
      if (!event.newValue && current && current.stored) signedOut(null);
      else if (event.newValue && !current && state.status === "signed-out") refresh(false);
      return;
    }
    if (event.key !== RELAY || !event.newValue) return;
    try { onResult(JSON.parse(event.newValue)); } catch (e) { /* not ours */ }
  });
  // Only from this page's own popup, and only from this origin.
  window.addEventListener("message", function (event) {
    if (event.origin !== location.origin || !pending || event.source !== pending.popup) return;
    onResult(event.data);
  });

  function begin() {
    bindControls();
    var refused = function () {
      if (window.console) console.warn("Tiledesk SSO bridge: " + BRIDGE + " does not serve this page: is " + location.origin + " in its [sites]?");
      setState("error", { error: "unavailable" });
    };
    call("GET", configPath(), { credentials: "omit" }).then(function (answer) {
      if (answer.status !== 200) {
        refused();
        return;
      }
      config = answer.body;
      loadWidget();
      prepare();
      if (landing && landing.handle) {
        var verifier = null;
        try {
          verifier = sessionStorage.getItem(VERIFIER);
          sessionStorage.removeItem(VERIFIER);
        } catch (e) { /* no storage */ }
        if (verifier) redeem(landing.handle, verifier);
        else refresh(false);
      } else if (landing && landing.error) {
        try { sessionStorage.removeItem(VERIFIER); } catch (e) { /* no storage */ }
        signedOut(String(landing.error).slice(0, 64));
      } else {
        refresh(false);
      }
    }, refused);
  }

  if (document.body) begin();
  else document.addEventListener("DOMContentLoaded", begin);
})();
