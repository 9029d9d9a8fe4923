/* Mailhost webmail: progressive enhancement only. Every action works without this file. */
(function () {
  "use strict";
  var doc = document;
  doc.documentElement.classList.add("js");
  readerTimezone();
  doc.addEventListener("DOMContentLoaded", function () {
    doc.body.classList.add("js");
    sidebar();
    selection();
    confirmations();
    moveSelects();
    composeHelpers();
    autosizeFrames();
    shortcuts();
    poll();
  });

  /* Times are shown in the reader's zone: the browser names it in a cookie the server reads
     (webmail/timezones.py). When the page was made for another zone, load it once more. */
  function readerTimezone() {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) { return; }
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    doc.cookie = "mailhost_tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax" + secure;
    doc.addEventListener("DOMContentLoaded", function () {
      var shown = doc.body.getAttribute("data-timezone");
      var key = "mailhost-tz-reload";
      if (shown && shown !== zone && doc.querySelector("time, .when, .h-date") &&
          window.sessionStorage && sessionStorage.getItem(key) !== zone) {
        sessionStorage.setItem(key, zone);  /* once: an unknown zone must not reload forever */
        window.location.reload();
      }
    });
  }

  function sidebar() {
    doc.querySelectorAll("[data-toggle-sidebar]").forEach(function (el) {
      el.addEventListener("click", function () { doc.body.classList.toggle("sidebar-open"); });
    });
  }

  /* Checkboxes in the list: select all, show the actions once something is picked. When the
     whole page is picked and the folder has more, offer every message of the folder (all=1,
     which the server takes as every UID in it). */
  function selection() {
    var all = doc.querySelector("[data-pick-all]");
    var picks = Array.prototype.slice.call(doc.querySelectorAll("[data-pick]"));
    var group = doc.querySelector("[data-needs-selection]");
    var counter = doc.querySelector("[data-selection-count]");
    var whole = doc.querySelector("[data-select-folder]");
    var wholeInput = doc.querySelector("[data-all-input]");
    var note = doc.querySelector("[data-select-folder-note]");
    if (!picks.length) { if (all) { all.disabled = true; } return; }
    function refresh() {
      var n = picks.filter(function (p) { return p.checked; }).length;
      picks.forEach(function (p) { p.closest(".msg").classList.toggle("selected", p.checked); });
      if (group) { group.classList.toggle("active", n > 0); }
      if (counter) { counter.textContent = n ? n + " selected" : ""; }
      if (all) { all.checked = n === picks.length; all.indeterminate = n > 0 && n < picks.length; }
      if (whole && wholeInput && note) {
        var every = n === picks.length;
        note.hidden = !every;
        if (!every) { wholeInput.value = ""; whole.textContent = whole.getAttribute("data-offer"); }
        else if (wholeInput.value === "1" && counter) { counter.textContent = whole.getAttribute("data-chosen"); }
      }
    }
    picks.forEach(function (p) { p.addEventListener("change", refresh); });
    if (all) {
      all.addEventListener("change", function () {
        picks.forEach(function (p) { p.checked = all.checked; });
        refresh();
      });
    }
    if (whole && wholeInput) {
      whole.addEventListener("click", function () {
        wholeInput.value = "1";
        whole.textContent = whole.getAttribute("data-chosen");
        refresh();
      });
    }
    refresh();
  }

  function confirmations() {
    doc.addEventListener("click", function (event) {
      var el = event.target.closest("[data-confirm]");
      if (el && !window.confirm(el.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  }

  /* "Move to…" submits as soon as a folder is chosen. */
  function moveSelects() {
    doc.querySelectorAll("[data-move-select]").forEach(function (select) {
      select.addEventListener("change", function () {
        if (!select.value) { return; }
        var button = select.form.querySelector("[data-move-button]");
        if (select.form.requestSubmit) { select.form.requestSubmit(button); } else { button.click(); }
      });
    });
  }

  function composeHelpers() {
    doc.querySelectorAll("[data-reveal]").forEach(function (button) {
      button.addEventListener("click", function () {
        var row = doc.querySelector('[data-optional="' + button.getAttribute("data-reveal") + '"]');
        if (row) { row.classList.add("shown"); row.querySelector("input").focus(); }
        button.hidden = true;
      });
    });
    doc.querySelectorAll("[data-file-input]").forEach(function (input) {
      var names = doc.querySelector("[data-file-names]");
      var error = doc.querySelector("[data-size-error]");
      var limit = parseInt(input.getAttribute("data-limit"), 10);
      /* The server refuses a message whose attachments exceed the limit once encoded: say so
         before the upload, and keep the files already attached and the rest of the form. */
      function total() {
        var sum = 0;
        Array.prototype.forEach.call(input.files, function (f) { sum += f.size; });
        doc.querySelectorAll("input[name=keep][data-octets]:checked").forEach(function (k) {
          sum += parseInt(k.getAttribute("data-octets"), 10) || 0;
        });
        return sum;
      }
      function fits() {
        if (!limit || total() <= limit) { if (error) { error.hidden = true; } return true; }
        var picked = Array.prototype.map.call(input.files, function (f) {
          return f.name + " (" + megabytes(f.size) + ")";
        });
        if (error) {
          error.textContent = "Not attached: " + picked.join(", ") + ". Attachments can total " +
            megabytes(limit) + " in all; the rest of your message is kept.";
          error.hidden = false;
        }
        input.value = "";
        if (names) { names.textContent = ""; }
        return false;
      }
      input.addEventListener("change", function () {
        var list = Array.prototype.map.call(input.files, function (f) { return f.name; });
        if (names) { names.textContent = list.join(", "); }
        fits();
      });
      if (input.form) {
        input.form.addEventListener("submit", function (event) {
          if (!fits()) { event.preventDefault(); }
        });
      }
    });
    identities();
    suggestions();
    richText();
    var form = doc.querySelector(".compose-form");
    if (form) {
      var dirty = false;
      form.addEventListener("input", function () { dirty = true; });
      form.addEventListener("submit", function () { dirty = false; });
      autosave(form);
      window.addEventListener("beforeunload", function (event) {
        if (dirty) { event.preventDefault(); event.returnValue = ""; }
      });
    }
  }

  /* Drafts save themselves: 3 s after the last keystroke the form is posted as "Save draft"
     (without new files: those go with Send or Save), and the draft's UID it came back with
     replaces the one on the form, so each save replaces the previous draft. */
  function autosave(form) {
    var status = doc.querySelector("[data-autosave-status]");
    var timer = null;
    var saving = false;
    function save() {
      if (saving) { timer = window.setTimeout(save, 1000); return; }
      saving = true;
      var data = new FormData(form);
      data.delete("attachments");
      data.set("action", "save");
      fetch(form.getAttribute("action"), { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) {
          var match = /[?&]draft=(\d+)/.exec(r.url || "");
          if (!r.ok || !match) { throw new Error("not saved"); }
          form.querySelector("input[name=draft_uid]").value = match[1];
          if (status) { status.textContent = "Draft saved"; }
        })
        .catch(function () { if (status) { status.textContent = "Draft not saved"; } })
        .then(function () { saving = false; });
    }
    form.addEventListener("input", function (event) {
      if (event.target && event.target.type === "file") { return; }
      window.clearTimeout(timer);
      timer = window.setTimeout(save, 3000);
    });
    form.addEventListener("submit", function () { window.clearTimeout(timer); });
  }

  /* Rich text: a contenteditable editor whose HTML goes in the hidden `html` field and its
     text in `body` (the plain-text alternative), kept current on every change. The server
     sanitizes the HTML with the reader's nh3 rules before it builds the message. */
  function richText() {
    var toggle = doc.querySelector("[data-rich-toggle]");
    var editor = doc.querySelector("[data-rich-editor]");
    var body = doc.querySelector("[data-body]");
    var html = doc.querySelector("[data-rich-html]");
    var tools = doc.querySelector("[data-rich-tools]");
    if (!toggle || !editor || !body || !html) { return; }
    function sync() { html.value = editor.innerHTML; body.value = editor.innerText; }
    function show(rich) {
      editor.hidden = !rich;
      body.hidden = rich;
      if (tools) { tools.hidden = !rich; }
      if (rich) {
        if (!editor.innerHTML.trim()) {
          if (html.value) { editor.innerHTML = html.value; }
          else { editor.textContent = body.value; editor.style.whiteSpace = "pre-wrap"; }
        }
        sync();
      } else {
        body.value = editor.innerText || body.value;
      }
    }
    editor.addEventListener("input", sync);
    toggle.addEventListener("change", function () { show(toggle.checked); });
    if (tools) {
      tools.addEventListener("click", function (event) {
        var button = event.target.closest("[data-command]");
        if (!button) { return; }
        editor.focus();
        doc.execCommand(button.getAttribute("data-command"), false, null);
        sync();
      });
    }
    show(toggle.checked);
  }

  /* Choosing another From swaps the signature under the "-- " line for that identity's. */
  function identities() {
    var select = doc.querySelector("[data-identity]");
    var body = doc.querySelector("[data-body]");
    if (!select || !body) { return; }
    var shown = select.options[select.selectedIndex].getAttribute("data-signature") || "";
    select.addEventListener("change", function () {
      var next = select.options[select.selectedIndex].getAttribute("data-signature") || "";
      var text = body.value;
      var old = shown ? "\n\n-- \n" + shown.replace(/\n+$/, "") + "\n" : "";
      var fresh = next ? "\n\n-- \n" + next.replace(/\n+$/, "") + "\n" : "";
      if (old && text.indexOf(old) >= 0) {
        body.value = text.replace(old, fresh);
      } else if (fresh) {
        body.value = text.replace(/\n*$/, "") + fresh;
      }
      shown = next;
    });
  }

  /* Recipient fields suggest past correspondents as one types (the last address after a
     comma); the datalist holds the whole field's value with the suggestion completed. */
  function suggestions() {
    var list = doc.querySelector("datalist[data-suggest-url]");
    if (!list) { return; }
    var url = list.getAttribute("data-suggest-url");
    var timer = null;
    doc.querySelectorAll("[data-suggest]").forEach(function (input) {
      input.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          var value = input.value;
          var cut = Math.max(value.lastIndexOf(","), value.lastIndexOf(";"));
          var head = cut >= 0 ? value.slice(0, cut + 1) + " " : "";
          var word = value.slice(cut + 1).trim();
          if (word.length < 2) { list.textContent = ""; return; }
          fetch(url + "?q=" + encodeURIComponent(word), { credentials: "same-origin" })
            .then(function (r) { return r.json(); })
            .then(function (data) {
              list.textContent = "";
              (data.addresses || []).forEach(function (address) {
                var option = doc.createElement("option");
                option.value = head + address + ", ";
                option.textContent = address;
                list.appendChild(option);
              });
            })
            .catch(function () {});
        }, 150);
      });
    });
  }

  function megabytes(octets) {
    return (octets / (1024 * 1024)).toFixed(1) + " MB";
  }

  /* The message frame has no scripts of its own; we size it from the outside. */
  function autosizeFrames() {
    doc.querySelectorAll("iframe[data-autosize]").forEach(function (frame) {
      function fit() {
        try {
          var inner = frame.contentDocument;
          if (!inner || !inner.documentElement) { return; }
          frame.style.height = "40px";  /* shrink first: scrollHeight never reports less than the frame */
          frame.style.height = (inner.documentElement.scrollHeight + 16) + "px";
        } catch (e) { /* cross-origin: keep the default height */ }
      }
      frame.addEventListener("load", function () {
        fit();
        var images = frame.contentDocument ? frame.contentDocument.images : [];
        Array.prototype.forEach.call(images, function (img) { img.addEventListener("load", fit); });
      });
      fit();
    });
  }

  /* Gmail's keys: j/k move through the list, x selects, Enter opens; r/a/f reply, reply all,
     forward; e archives, # deletes (the selection, else the current line, else the open
     message); / searches, c composes, ? lists them all. */
  function shortcuts() {
    var current = -1;
    function rows() { return Array.prototype.slice.call(doc.querySelectorAll(".message-list .msg-link")); }
    function move(step) {
      var links = rows();
      if (!links.length) { return; }
      var at = links.indexOf(doc.activeElement);
      current = Math.max(0, Math.min(links.length - 1, (at >= 0 ? at : current) + step));
      links.forEach(function (l, i) { l.closest(".msg").classList.toggle("current", i === current); });
      links[current].focus();
    }
    function currentRow() {
      var links = rows();
      var at = links.indexOf(doc.activeElement);
      var link = links[at >= 0 ? at : current];
      return link ? link.closest(".msg") : null;
    }
    function act(value) {
      var button = doc.querySelector('button[name=action][value="' + value + '"]');
      if (!button) { return; }
      if (doc.querySelector(".message-list") && !doc.querySelector("[data-pick]:checked")) {
        var row = currentRow();
        var pick = row && row.querySelector("[data-pick]");
        if (!pick) { return; }
        pick.checked = true;
        pick.dispatchEvent(new Event("change"));
      }
      if (button.form.requestSubmit) { button.form.requestSubmit(button); } else { button.click(); }
    }
    function follow(selector) {
      var link = doc.querySelector(selector);
      if (link) { window.location.href = link.href; }
    }
    var dialog = doc.querySelector("[data-shortcuts]");
    doc.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable ||
          event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (dialog && dialog.open) { return; }
      var key = event.key;
      if (key === "/") {
        var search = doc.querySelector("[data-search-input]");
        if (search) { event.preventDefault(); search.focus(); }
      } else if (key === "c") {
        follow("[data-test=compose]");
      } else if (key === "j" || key === "k") {
        event.preventDefault();
        move(key === "j" ? 1 : -1);
      } else if (key === "x") {
        var row = currentRow();
        var pick = row && row.querySelector("[data-pick]");
        if (pick) { pick.checked = !pick.checked; pick.dispatchEvent(new Event("change")); }
      } else if (key === "r") {
        follow("[data-test=reply]");
      } else if (key === "a") {
        follow("[data-test=reply-all]");
      } else if (key === "f") {
        follow("[data-test=forward]");
      } else if (key === "e") {
        act("archive");
      } else if (key === "#") {
        act("delete");
      } else if (key === "?" && dialog && dialog.showModal) {
        event.preventDefault();
        dialog.showModal();
      }
    });
  }

  /* New mail without a reload, pushed: a long-poll the server answers as soon as a change
     event names this mailbox (webmail/push.py says why not SSE). The list is refetched only
     when the open folder changed and the reader has nothing selected. */
  function poll() {
    var url = doc.body.getAttribute("data-wait-url");
    if (!url || !doc.querySelector(".folder-list")) { return; }
    var baseTitle = doc.title;
    var inboxLink = doc.querySelector('.folder-link[data-folder-name="INBOX"]');
    var version = "";
    function tick() {
      fetch(url + "?v=" + encodeURIComponent(version), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
          if (!r.ok) { throw new Error("status " + r.status); }
          return r.json();
        })
        .then(function (data) {
          version = data.v || "";
          update(data);
          window.setTimeout(tick, (data.retry || 0) * 1000);
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    }
    function update(data) {
      (data.folders || []).forEach(function (f) {
        var link = doc.querySelector('.folder-link[data-folder-id="' + f.id + '"]');
        if (link) {
          link.querySelector("[data-unseen]").textContent = f.unseen ? String(f.unseen) : "";
          link.classList.toggle("has-unseen", f.unseen > 0);
        }
        if (link === inboxLink) {
          doc.title = (f.unseen ? "(" + f.unseen + ") " : "") + baseTitle;
        }
        var pane = doc.querySelector("[data-folder-pane]");
        if (pane && String(f.id) === pane.getAttribute("data-folder-id") && pane.getAttribute("data-live") === "1") {
          var changed = String(f.uidnext) !== pane.getAttribute("data-uidnext") ||
                        String(f.modseq) !== pane.getAttribute("data-modseq");
          var picked = doc.querySelector("[data-pick]:checked");
          if (changed && !picked) { refreshList(pane); }
        }
      });
    }
    function refreshList(pane) {
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          var newPane = fresh.querySelector("[data-folder-pane]");
          if (!newPane) { return; }
          pane.replaceWith(doc.adoptNode(newPane));
          selection();
          moveSelects();
        });
    }
    tick();
  }
})();
