// A stand-in for Tiledesk's widget loader (widget.tiledesk.com/v5/launch.js) for the browser tests.
//
// It keeps the real loader's contract, read in Tiledesk/chat21-web-widget src/launch.js and
// src/app/app.component.ts:
// - it finds itself through <script id="tiledesk-jssdk"> (the base URL comes from its src);
// - it creates window.tiledesk with on(name, fn), listeners living on a <chat-root> element that
//   receives CustomEvents ({detail: {event, isLogged, user_id, ...}});
// - unless the page defined window.tileDeskAsyncInit, it defines one that, on "onBeforeInit",
//   drains window.Tiledesk.q: "on*" entries become listeners (an "onBeforeInit" one is also
//   called at once with the event), any other entry calls
//   window.tiledesk[name](arg) with at most one argument (return values are dropped), and then
//   replaces window.Tiledesk with a dispatcher that returns window.tiledesk[name](arg) for methods
//   and the property otherwise (so Tiledesk("onX", fn) after load registers nothing);
// - signInWithCustomToken(token) returns a Promise of the user; a refused token signs the widget
//   out (firing onAuthStateChanged isLogged=false if it was signed in) and rejects;
// - logout() returns a Promise and fires onAuthStateChanged isLogged=false when signed in.
// The real loader waits for the first scroll/mouse/touch/key event or 5 s before it starts; here it
// starts on page load unless window.__widgetStartDelayMs is set (then after that many ms).
//
// Test hooks: window.__tiledeskCalls = [[method, ...args], ...] records every call (and each is
// logged to the console as "[tiledesk] <method>");
// window.__tiledeskSettingsSeen is a copy of window.tiledeskSettings taken at start;
// window.__widgetRejectTokens = N refuses the next N tokens; window.__widgetState tells
// {started, isLogged, user_id}; window.__widgetErrors lists contract violations seen.
(function () {
  "use strict";
  var calls = (window.__tiledeskCalls = window.__tiledeskCalls || []);
  var errors = (window.__widgetErrors = window.__widgetErrors || []);
  var state = (window.__widgetState = { started: false, isLogged: false, user_id: null });

  function record(name, args) {
    calls.push([name].concat(Array.prototype.slice.call(args)));
    console.debug("[tiledesk] " + name);  // survives navigation in the test's console log
  }

  function decodePayload(jws) {
    var part = String(jws).split(".")[1] || "";
    part = part.replace(/-/g, "+").replace(/_/g, "/");
    while (part.length % 4) part += "=";
    var bytes = atob(part);
    var text = decodeURIComponent(
      Array.prototype.map.call(bytes, function (c) {
        return "%" + ("00" + c.charCodeAt(0).toString(16)).slice(-2);
      }).join("")
    );
    return JSON.parse(text);
  }

  function start() {
    var script = document.getElementById("tiledesk-jssdk");
    if (!script) {
      errors.push("no <script id=\"tiledesk-jssdk\"> on the page");
      return;
    }
    var base = script.src.replace("/launch.js", "");
    var settings = window.tiledeskSettings;
    window.__tiledeskSettingsSeen = settings ? JSON.parse(JSON.stringify(settings)) : null;
    if (!settings || !settings.projectid) errors.push("window.tiledeskSettings.projectid is missing");

    var root = document.createElement("chat-root");
    function fire(name, detail) {
      root.dispatchEvent(new CustomEvent(name, { detail: detail }));
    }
    function authChanged(event) {
      fire("onAuthStateChanged", {
        event: event, isLogged: state.isLogged, user_id: state.user_id,
        default_settings: window.__tiledeskSettingsSeen
      });
    }

    window.tiledesk = {
      tiledeskroot: root,
      on: function (name, handler) { root.addEventListener(name, handler); },
      getBaseLocation: function () { return base; }
    };

    if (!window.tileDeskAsyncInit) initAsyncEvents();
    try {
      window.tileDeskAsyncInit();
    } catch (e) {
      errors.push("tileDeskAsyncInit failed: " + e);
    }
    document.body.appendChild(root);

    // What the Angular app adds to window.tiledesk once it runs (addComponentToWindow).
    var t = window.tiledesk;
    t.signInWithCustomToken = function (token) {
      record("signInWithCustomToken", arguments);
      if (window.__widgetRejectTokens > 0) {
        window.__widgetRejectTokens -= 1;
        return signOut().then(function () { return Promise.reject(new Error("401 Unauthorized")); });
      }
      var payload;
      try {
        if (typeof token !== "string" || token.indexOf("JWT ") !== 0) {
          throw new Error("the server only accepts the 'JWT <token>' scheme");
        }
        payload = decodePayload(token.slice(4));
        if (!payload._id) throw new Error("no _id in the token");
      } catch (e) {
        errors.push("signInWithCustomToken: " + e.message);
        return signOut().then(function () { return Promise.reject(e); });
      }
      return new Promise(function (resolve) {
        setTimeout(function () {
          state.isLogged = true;
          state.user_id = payload._id;
          authChanged("online");
          resolve({
            _id: payload._id, uid: payload._id, firstname: payload.firstname,
            lastname: payload.lastname, email: payload.email
          });
        }, 10);
      });
    };
    function signOut() {
      if (!state.isLogged) return Promise.resolve(false);
      state.isLogged = false;
      state.user_id = null;
      authChanged("offline");
      return Promise.resolve(true);
    }
    t.logout = function () {
      record("logout", arguments);
      return signOut();
    };
    t.signInAnonymous = function () {
      record("signInAnonymous", arguments);
      errors.push("signInAnonymous was called: the visitor would become an anonymous guest");
      return Promise.reject(new Error("not in the stand-in"));
    };
    ["show", "hide", "open", "close", "dispose", "setParameter", "reInit", "restart"].forEach(function (name) {
      t[name] = function () { record(name, arguments); };
    });

    fire("onLoadParams", { default_settings: window.__tiledeskSettingsSeen });
    fire("onBeforeInit", { default_settings: window.__tiledeskSettingsSeen });
    state.started = true;
    fire("onInit", { default_settings: window.__tiledeskSettingsSeen });
    if (settings && settings.autoStart !== false) {
      errors.push("autoStart is not false: the real widget would sign in an anonymous guest first");
    }
  }

  function initAsyncEvents() {
    window.tileDeskAsyncInit = function () {
      window.tiledesk.on("onBeforeInit", function (eventData) {
        var q = (window.Tiledesk && window.Tiledesk.q) || [];
        q.forEach(function (f) {
          if (f.length < 1) return;
          var name = f[0];
          if (name === "onLoadParams" || name === "setParameter") return;
          if (typeof name === "string" && name.indexOf("on") === 0) {
            if (f.length === 2 && typeof f[1] === "function") {
              calls.push([name, "[function]"]);
              window.tiledesk.on(name, f[1]);
              if (name === "onBeforeInit") f[1](eventData);
            }
          } else if (typeof window.tiledesk[name] === "function") {
            if (f.length === 2) window.tiledesk[name](f[1]);
            else window.tiledesk[name]();
          } else {
            errors.push("unknown queued method " + name);
          }
        });
        window.Tiledesk = function () {
          if (arguments.length < 1) return undefined;
          var name = arguments[0];
          var arg = arguments.length === 2 ? arguments[1] : undefined;
          var member = window.tiledesk[name];
          if (typeof member === "function") return window.tiledesk[name](arg);
          record(name + " (not a method after load: ignored)", Array.prototype.slice.call(arguments, 1));
          return member;
        };
      });
    };
  }

  var delay = Number(window.__widgetStartDelayMs || 0);
  function begin() { delay > 0 ? setTimeout(start, delay) : start(); }
  if (document.readyState === "complete") begin();
  else window.addEventListener("load", begin, false);
})();
