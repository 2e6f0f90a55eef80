// The widget page: embed Tiledesk, hand it a fresh token from POST /auth, sign it out on logout.
(function () {
  "use strict";
  // Every word shown here comes from the page, already in the visitor's language.
  var config = JSON.parse(document.getElementById("bridge-config").textContent);
  var text = config.messages;
  var statusBox = document.getElementById("chat-status");
  var retriesLeft = 1;
  var sentToken = null;
  var widgetStarted = false;
  var chatFailed = false;

  function status(message) {
    if (statusBox && !chatFailed) statusBox.textContent = message;
  }

  // A blocked or unreachable widget script (ad blocker, firewall) must not leave the page
  // saying "connecting" forever.
  function chatNotLoaded() {
    if (widgetStarted || chatFailed || !config.signedIn) return;
    status(text.notLoaded);
    chatFailed = true;
    if (statusBox) statusBox.classList.add("problem");
  }

  window.tiledeskSettings = config.tiledeskSettings;
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
    js.onerror = chatNotLoaded;
    var first = d.getElementsByTagName(s)[0];
    first.parentNode.insertBefore(js, first);
  })(document, "script", "tiledesk-jssdk");

  function showPayload(token) {
    var box = document.getElementById("token-payload");
    if (!box) return;
    try {
      var part = token.replace(/^JWT /, "").split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      box.textContent = token + "\n\n" + JSON.stringify(JSON.parse(atob(part)), null, 2);
    } catch (e) {
      box.textContent = token;
    }
  }

  function retry(reason) {
    if (retriesLeft <= 0) {
      if (window.console) console.warn("chat sign-in failed: " + reason);
      status(text.signInFailed);
      return;
    }
    retriesLeft -= 1;
    signIn();
  }

  // A call queued before the widget starts loses its return value, and with it the
  // refusal of a stale token; so sign in through the widget's own object once it exists
  // (the queue runs onBeforeInit callbacks right after the widget's methods are there).
  function whenWidgetReady(fn) {
    if (window.tiledesk && typeof window.tiledesk.signInWithCustomToken === "function") {
      fn();
    } else {
      window.Tiledesk("onBeforeInit", fn);
    }
  }

  function signIn() {
    status(text.connecting);
    fetch(config.authUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.status === 401) {
        status(text.sessionEnded);
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (body) {
      if (!body) return;
      sentToken = body.token;
      showPayload(body.token);
      whenWidgetReady(function () {
        var result = window.tiledesk.signInWithCustomToken(body.token);
        if (result && typeof result.then === "function") {
          result.then(function () { status(text.connected); }, function () { retry("token refused"); });
        }
      });
    }).catch(function () {
      retry("no token");
    });
  }

  window.Tiledesk("onAuthStateChanged", function (event) {
    var detail = (event && event.detail) || {};
    if (detail.isLogged) {
      status(text.connected);
    } else if (sentToken && config.signedIn) {
      sentToken = null;
      retry("signed out by the chat");
    }
  });

  var form = document.getElementById("signout");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      config.signedIn = false;
      var done = false;
      function submit() {
        if (done) return;
        done = true;
        form.submit();
      }
      try {
        var result = window.Tiledesk("logout");
        if (result && typeof result.then === "function") {
          result.then(submit, submit);
          setTimeout(submit, 1500);
          return;
        }
      } catch (e) { /* the widget is gone: sign out of the bridge anyway */ }
      submit();
    });
  }

  if (config.signedIn) {
    window.Tiledesk("onBeforeInit", function () { widgetStarted = true; });
    setTimeout(chatNotLoaded, config.chatTimeoutMs);
    signIn();
  } else {
    // Whoever used this browser before may have left a chat identity behind (a logout
    // queued before the widget started is lost with the page): clear it.
    window.Tiledesk("logout");
  }
})();
