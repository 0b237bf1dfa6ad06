/*
 * The modal's behaviour, on top of htmx (loaded just before this file, both deferred).
 *
 * Every page has one empty <dialog id="modal">; htmx swaps each step of a flow into #modal-content. A non-empty
 * swap opens the dialog, an empty one (the server saying "done") closes it. Closing it any other way (Esc, the
 * close button) discards the preview the dialog was showing, so nothing is left generating for nobody.
 */
(function () {
  "use strict";

  var dialog = document.getElementById("modal");
  var content = document.getElementById("modal-content");
  var toast = document.getElementById("toast");
  if (!dialog || !content) {
    return;
  }

  // Bumped each time the dialog closes; a response to a request sent from an older dialog is not shown.
  var epoch = 0;
  var toastTimer = null;

  var FOCUSABLE =
    'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), ' +
    'textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function postInBackground(url) {
    // keepalive lets the request finish even when the page is being left.
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    }).catch(function () {
      // The preview expires on its own; a lost discard costs nothing.
    });
  }

  function discardUrlIn(root) {
    var holder = root.querySelector("[data-discard-url]");
    return holder ? holder.getAttribute("data-discard-url") : null;
  }

  function focusables() {
    return Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (element) {
      return element.offsetParent !== null || element === document.activeElement;
    });
  }

  function focusStep() {
    var target = content.querySelector("[autofocus]") || content.querySelector("#modal-title") || focusables()[0];
    if (target) {
      target.focus();
    }
  }

  function openModal() {
    if (!dialog.open) {
      dialog.showModal();
    }
    focusStep();
  }

  function closeModal() {
    if (dialog.open) {
      dialog.close();
    }
  }

  dialog.addEventListener("close", function () {
    epoch += 1;
    var url = discardUrlIn(content);
    if (url) {
      postInBackground(url);
    }
    content.innerHTML = "";
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-modal]")) {
      closeModal();
    }
  });

  // showModal() already makes the page behind inert; this keeps Tab cycling inside instead of leaving for the
  // browser's own controls.
  dialog.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") {
      return;
    }
    var items = focusables();
    if (items.length === 0) {
      event.preventDefault();
      return;
    }
    var first = items[0];
    var last = items[items.length - 1];
    var active = document.activeElement;
    if (event.shiftKey && (active === first || !dialog.contains(active) || active === dialog)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !dialog.contains(active))) {
      event.preventDefault();
      first.focus();
    }
  });

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail.elt;
    if (dialog.contains(source)) {
      event.detail.xhr.modalEpoch = epoch;
    }
    var timer = source.querySelector && source.querySelector("[data-request-timer]");
    if (timer) {
      timer.textContent = "0";
      timer.setAttribute("data-elapsed", "0");
      timer.removeAttribute("data-started");
    }
  });

  document.body.addEventListener("htmx:afterRequest", function (event) {
    var source = event.detail.elt;
    var timer = source.querySelector && source.querySelector("[data-request-timer]");
    if (timer) {
      timer.removeAttribute("data-elapsed");
    }
  });

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.modalEpoch === undefined || xhr.modalEpoch === epoch) {
      return;
    }
    // The dialog was closed while this request was under way: apply its page updates, not its modal step, and
    // throw away any preview it brings.
    xhr.staleModal = true;
    var response = new DOMParser().parseFromString(event.detail.serverResponse || "", "text/html");
    var url = discardUrlIn(response);
    if (url) {
      postInBackground(url);
    }
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target !== content) {
      return;
    }
    if (event.detail.xhr && event.detail.xhr.staleModal) {
      content.innerHTML = "";
      return;
    }
    if (content.children.length === 0) {
      // The server finished the flow; with the content gone there is no preview left for the close to discard.
      closeModal();
    } else {
      openModal();
    }
  });

  document.body.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target === toast) {
      window.clearTimeout(toastTimer);
      toastTimer = window.setTimeout(function () {
        toast.innerHTML = "";
      }, 5000);
    }
  });

  function showToast(message) {
    toast.innerHTML = "";
    var line = document.createElement("p");
    line.className = "toast-message toast-error";
    line.textContent = message;
    toast.appendChild(line);
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(function () {
      toast.innerHTML = "";
    }, 8000);
  }

  document.body.addEventListener("htmx:sendError", function () {
    showToast("Could not reach the server. Check your connection and try again.");
  });

  document.body.addEventListener("htmx:responseError", function () {
    showToast("Something went wrong on our side. Try again in a moment.");
  });

  // The live character count of the prompt.
  function updateCounter(field) {
    var output = document.getElementById(field.getAttribute("data-char-counter"));
    if (!output) {
      return;
    }
    var length = field.value.length;
    output.textContent = String(length);
    var min = Number(output.getAttribute("data-min") || 0);
    var max = Number(output.getAttribute("data-max") || Infinity);
    output.parentNode.classList.toggle("char-count-off", length < min || length > max);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-char-counter]")) {
      updateCounter(event.target);
    }
  });

  htmx.onLoad(function (root) {
    var fields = root.querySelectorAll ? root.querySelectorAll("[data-char-counter]") : [];
    Array.prototype.forEach.call(fields, updateCounter);
  });

  // Seconds elapsed: every [data-elapsed] counts up from the value the server (or the request start) gave it.
  window.setInterval(function () {
    var now = Date.now();
    Array.prototype.forEach.call(document.querySelectorAll("[data-elapsed]"), function (element) {
      if (!element.hasAttribute("data-started")) {
        var already = Number(element.getAttribute("data-elapsed")) || 0;
        element.setAttribute("data-started", String(now - already * 1000));
      }
      var started = Number(element.getAttribute("data-started"));
      element.textContent = String(Math.floor((now - started) / 1000));
    });
  }, 250);
})();
