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

  // The discard still on its way, if any: htmx's requests wait for it (htmx:confirm below), so that nothing they
  // bring back (the next dialog's history strip, say) still lists the preview it throws away.
  var discarding = null;

  function discardInBackground(url) {
    // keepalive lets the request finish even when the page is being left.
    var sent = fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    }).catch(function () {
      // The preview expires on its own; a lost discard costs nothing.
    });
    discarding = sent;
    sent.then(function () {
      if (discarding === sent) {
        discarding = null;
      }
    });
  }

  document.body.addEventListener("htmx:confirm", function (event) {
    if (!discarding) {
      return;
    }
    event.preventDefault();
    discarding.then(function () {
      event.detail.issueRequest(true);
    });
  });

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
    var autofocus = content.querySelector("[autofocus]");
    var target = autofocus || content.querySelector("#modal-title") || focusables()[0];
    if (autofocus) {
      // Focused here, once: htmx would focus it again as it settles, taking focus from someone already tabbing on.
      autofocus.removeAttribute("autofocus");
    }
    if (target) {
      target.focus();
    }
  }

  // What had focus when the dialog opened, its card and the cards beside it: when a step replaces that card (a
  // rename), focus goes to the same control of the new card; when it deletes the card, to the next card, else the
  // previous one, else the page heading; never to <body>.
  var CARD_CONTROLS = 'a[href]:not([tabindex="-1"]), button:not([disabled])';
  var opener = null;

  function rememberOpener() {
    var active = document.activeElement;
    var card = active && active.closest ? active.closest(".card[id]") : null;
    var cards = [];
    var index = 0;
    if (card) {
      index = Array.prototype.indexOf.call(card.querySelectorAll(CARD_CONTROLS), active);
      [card, card.nextElementSibling, card.previousElementSibling].forEach(function (sibling) {
        if (sibling && sibling.id) {
          cards.push(sibling.id);
        }
      });
    }
    opener = { element: active, cards: cards, index: Math.max(0, index) };
  }

  function restoreFocus() {
    var remembered = opener;
    opener = null;
    var active = document.activeElement;
    if (!remembered || (active && active !== document.body) || (remembered.element && remembered.element.isConnected)) {
      return;
    }
    for (var i = 0; i < remembered.cards.length; i++) {
      var card = document.getElementById(remembered.cards[i]);
      var controls = card ? card.querySelectorAll(CARD_CONTROLS) : [];
      var control = controls[i === 0 ? remembered.index : 0] || controls[0];
      if (control) {
        control.focus();
        return;
      }
    }
    var heading = document.querySelector("#main h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  // Whether the dialog is open as far as this script knows. The browser closes it at once (Esc) but fires "close"
  // only at its next frame; a response handled in between must already find the dialog closed (closedNow).
  var shown = false;

  function openModal() {
    if (!dialog.open) {
      rememberOpener();
      dialog.showModal();
      shown = true;
    }
    focusStep();
  }

  // The close, handled once, as soon as it is seen: from closeModal, the "close" event, or a swap that comes first.
  function closedNow() {
    if (!shown || dialog.open) {
      return;
    }
    shown = false;
    epoch += 1;
    var url = discardUrlIn(content);
    if (url) {
      discardInBackground(url);
    }
    content.innerHTML = "";
    // After the browser's own return of focus to the opener (to <body> when the opener is gone).
    window.setTimeout(restoreFocus, 0);
  }

  function closeModal() {
    if (dialog.open) {
      dialog.close();
    }
    closedNow();
  }

  dialog.addEventListener("close", closedNow);

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-close-modal]")) {
      closeModal();
    }
  });

  // A click on the backdrop (outside the dialog's box, pressed and released there) closes it like Esc.
  var pressedOnBackdrop = false;

  function onBackdrop(event) {
    if (event.target !== dialog) {
      return false;
    }
    var box = dialog.getBoundingClientRect();
    return (
      event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom
    );
  }

  dialog.addEventListener("pointerdown", function (event) {
    pressedOnBackdrop = onBackdrop(event);
  });

  dialog.addEventListener("click", function (event) {
    if (pressedOnBackdrop && onBackdrop(event)) {
      closeModal();
    }
    pressedOnBackdrop = false;
  });

  // A browser scrolls a focused text box only as far as its caret: the rest of the box could stay under the actions
  // bar at the dialog's bottom edge. Bring the whole box into view (the dialog's scroll-padding keeps it clear).
  dialog.addEventListener("focusin", function (event) {
    if (event.target.tagName === "TEXTAREA") {
      event.target.scrollIntoView({ block: "nearest" });
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
    // Requests from the dialog, or for it (the waiting step's htmx.ajax once its preview is finished).
    if (dialog.contains(source) || event.detail.target === content) {
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
    closedNow();
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
      discardInBackground(url);
    }
    // Only the out-of-band parts are swapped in: the step itself (and its preview image, discarded by now) never
    // reaches the page, so nothing asks for an image that is gone, and the dialog (by now maybe a newer one, open
    // on another step) is left as it is.
    event.detail.serverResponse = Array.prototype.map
      .call(response.body.querySelectorAll(":scope > [hx-swap-oob]"), function (element) {
        return element.outerHTML;
      })
      .join("");
    event.detail.swapOverride = "none";
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target !== content) {
      return;
    }
    if (event.detail.xhr && event.detail.xhr.staleModal) {
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
    // The server trims the prompt before it counts it; so does the counter.
    var length = field.value.trim().length;
    output.textContent = String(length);
    var min = Number(output.getAttribute("data-min") || 0);
    var max = Number(output.getAttribute("data-max") || Infinity);
    // An untouched empty form is not an error yet: red only once typed in, or when the server refused it.
    var judged = field.hasAttribute("data-edited") || field.getAttribute("aria-invalid") === "true";
    output.parentNode.classList.toggle("char-count-off", judged && (length < min || length > max));
  }

  // A field the server refused loses its error (message, red border) as soon as what is typed is valid.
  function clearFixedError(field) {
    var wrapper = field.closest(".field-invalid");
    if (!wrapper || (field.checkValidity && !field.checkValidity())) {
      return;
    }
    wrapper.classList.remove("field-invalid");
    field.removeAttribute("aria-invalid");
    Array.prototype.forEach.call(wrapper.querySelectorAll(".errorlist"), function (list) {
      list.remove();
    });
  }

  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field.matches) {
      return;
    }
    if (field.matches("[data-char-counter]")) {
      field.setAttribute("data-edited", "");
      updateCounter(field);
    }
    clearFixedError(field);
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select, input[type=radio], input[type=checkbox]")) {
      clearFixedError(event.target);
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

/*
 * Copy buttons (the API tokens page): a button with data-copy-target copies the value of the element with that id.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy-target]") : null;
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) {
      return;
    }
    var done = function () {
      button.textContent = "Copied";
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(source.value).then(done, function () {
        source.select();
      });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });

  // Own photos: show the picked (or dropped) photo before it is sent; the server checks the file itself.
  var previewUrl = null;

  function showPhoto(input) {
    var zone = input.closest("[data-dropzone]");
    var image = zone && zone.querySelector("[data-photo-preview]");
    if (!image) {
      return;
    }
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
      previewUrl = null;
    }
    var file = input.files && input.files[0];
    if (!file || !/^image\/(jpeg|png|webp)$/.test(file.type)) {
      image.hidden = true;
      image.removeAttribute("src");
      return;
    }
    previewUrl = URL.createObjectURL(file);
    image.src = previewUrl;
    image.hidden = false;
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-photo-input]")) {
      showPhoto(event.target);
    }
  });

  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone) {
      event.preventDefault();
      zone.classList.add("dropzone-over");
    }
  });

  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone) {
      zone.classList.remove("dropzone-over");
    }
  });

  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) {
      return;
    }
    event.preventDefault();
    zone.classList.remove("dropzone-over");
    var input = zone.querySelector("[data-photo-input]");
    if (input && event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      showPhoto(input);
    }
  });
})();

/*
 * Live results: the waiting step follows its preview's event stream (GET /api/.../previews/:id/events) and, the
 * moment the preview is finished, asks for the finished step once. Meanwhile it says where the preview stands
 * ("3rd in line, about 40 s", "The model is warming up, retrying in 20 s"). Where the stream cannot be opened or
 * breaks for good, the progress line falls back to polling the status every second. A preview that finishes while
 * the tab is hidden shows in the tab's title until the tab is looked at again.
 */
(function () {
  "use strict";

  var dialog = document.getElementById("modal");
  var source = null;
  var baseTitle = document.title;

  function ordinal(n) {
    var tens = n % 100;
    var suffix = tens >= 11 && tens <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th";
    return n + suffix;
  }

  function aboutSeconds(seconds) {
    if (seconds === null || seconds === undefined) {
      return "";
    }
    return seconds >= 90 ? "about " + Math.round(seconds / 60) + " min" : "about " + Math.max(1, seconds) + " s";
  }

  function secondsUntil(isoTime) {
    return Math.max(0, Math.round((Date.parse(isoTime) - Date.now()) / 1000));
  }

  function liveWords(preview) {
    var eta = aboutSeconds(preview.etaSeconds);
    if (preview.status === "queued" && preview.error && preview.nextAttemptAt) {
      var why = preview.error.code === "MODEL_LOADING" ? "The model is warming up" : "The generator is busy";
      return why + ", retrying in " + secondsUntil(preview.nextAttemptAt) + " s";
    }
    if (preview.status === "queued" && preview.queuePosition) {
      return ordinal(preview.queuePosition) + " in line" + (eta ? ", " + eta : "");
    }
    if (preview.status === "running") {
      return "Drawing your portrait" + (eta ? ", " + eta + " left" : "");
    }
    return "";
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function fallBackToPolling(waiting) {
    stop();
    var progress = waiting.querySelector("#preview-progress");
    if (progress && document.body.contains(progress)) {
      htmx.trigger(progress, "preview-poll");
    }
  }

  function finished(waiting, preview) {
    stop();
    if (document.hidden) {
      document.title = (preview.status === "succeeded" ? "Preview ready - " : "Preview finished - ") + baseTitle;
    }
    if (document.body.contains(waiting)) {
      htmx.ajax("GET", waiting.getAttribute("data-status-url"), { target: "#modal-content", swap: "innerHTML" });
    }
  }

  function follow(waiting) {
    stop();
    if (!window.EventSource) {
      fallBackToPolling(waiting);
      return;
    }
    var line = waiting.querySelector("[data-live-line]");
    var stream = new EventSource(waiting.getAttribute("data-events-url"));
    source = stream;
    stream.addEventListener("preview", function (event) {
      var preview;
      try {
        preview = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (["succeeded", "failed", "canceled", "expired"].indexOf(preview.status) !== -1) {
        finished(waiting, preview);
        return;
      }
      if (line) {
        line.textContent = liveWords(preview);
      }
    });
    stream.addEventListener("error", function () {
      // The browser reconnects by itself (with Last-Event-ID) unless the stream was refused or closed for good.
      if (stream.readyState === EventSource.CLOSED && source === stream) {
        fallBackToPolling(waiting);
      }
    });
  }

  htmx.onLoad(function (root) {
    var waiting = root.matches && root.matches("[data-events-url]") ? root : null;
    waiting = waiting || (root.querySelector ? root.querySelector("[data-events-url]") : null);
    if (waiting) {
      follow(waiting);
    }
  });

  if (dialog) {
    dialog.addEventListener("close", stop);
  }

  // The person acts in the waiting step (Cancel): their answer, not the stream's finished step, comes next.
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (source && elt && elt.closest && elt.closest("[data-events-url]") && elt.id !== "preview-progress") {
      stop();
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      document.title = baseTitle;
    }
  });
})();
