// The widget page: embed Tiledesk, hand it a fresh token from POST /auth, sign it out on logout.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("bridge-config").textContent);
  var statusBox = document.getElementById("chat-status");
  var retriesLeft = 1;
  var sentToken = null;

  function status(text) {
    if (statusBox) statusBox.textContent = text;
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
      status("The chat could not sign you in (" + reason + "). Reload the page to try again.");
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
    status("Connecting the chat…");
    fetch(config.authUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.status === 401) {
        status("Your session has ended. Please sign in again.");
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (body) {
      if (!body) return;
      sentToken = body.token;
      showPayload(body.token);
      status("Chat connecting…");
      whenWidgetReady(function () {
        var result = window.tiledesk.signInWithCustomToken(body.token);
        if (result && typeof result.then === "function") {
          result.then(function () { status("Chat connected."); }, function () { retry("token refused"); });
        }
      });
    }).catch(function () {
      retry("no token");
    });
  }

  window.Tiledesk("onAuthStateChanged", function (event) {
    var detail = (event && event.detail) || {};
    if (detail.isLogged) {
      status("Chat connected.");
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
    signIn();
  } else {
    // Whoever used this browser before may have left a chat identity behind (a logout
    // queued before the widget started is lost with the page): clear it.
    window.Tiledesk("logout");
  }
})();
