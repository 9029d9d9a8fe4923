// Passkeys (WebAuthn): add one under Settings > Two-factor sign-in, sign in with one on the
// sign-in page or as the second step. The server makes the options and checks the answers
// (webmail/views/account.py, webmail/views/auth.py); this only moves them between JSON and
// the browser's ArrayBuffers.
(function () {
  "use strict";
  if (!window.PublicKeyCredential) return;

  function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }
  function fromBytes(buffer) {
    let binary = "";
    new Uint8Array(buffer).forEach((b) => { binary += String.fromCharCode(b); });
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
  }
  function say(text) {
    const status = document.querySelector("[data-passkey-status]");
    if (status) status.textContent = text;
  }
  function descriptors(list) {
    return (list || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) }));
  }

  async function register(button) {
    const nameInput = document.getElementById("pk-name");
    const options = await (await post(button.dataset.options)).json();
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    const credential = await navigator.credentials.create({ publicKey: options });
    const response = await post(button.dataset.register, {
      name: nameInput ? nameInput.value : "",
      credential: {
        id: credential.id,
        rawId: fromBytes(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: fromBytes(credential.response.clientDataJSON),
          attestationObject: fromBytes(credential.response.attestationObject),
          transports: credential.response.getTransports ? credential.response.getTransports() : [],
        },
        clientExtensionResults: credential.getClientExtensionResults(),
        authenticatorAttachment: credential.authenticatorAttachment,
      },
    });
    if (response.ok) {
      window.location.reload();
    } else {
      say((await response.json()).error || "The passkey was not added.");
    }
  }

  async function signIn(button) {
    const options = await (await post(button.dataset.options)).json();
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    const credential = await navigator.credentials.get({ publicKey: options });
    const r = credential.response;
    const response = await post(button.dataset.login, {
      id: credential.id,
      rawId: fromBytes(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: fromBytes(r.clientDataJSON),
        authenticatorData: fromBytes(r.authenticatorData),
        signature: fromBytes(r.signature),
        userHandle: r.userHandle ? fromBytes(r.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    });
    const answer = await response.json();
    if (response.ok) {
      window.location.assign(answer.redirect);
    } else {
      say(answer.error || "The passkey was not accepted.");
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-passkey-register], [data-passkey-login]");
    if (!button) return;
    event.preventDefault();
    const run = button.hasAttribute("data-passkey-register") ? register : signIn;
    run(button).catch((error) => say(`Passkey: ${error.message}`));
  });
  document.querySelectorAll("[data-passkey-login], [data-passkey-register]").forEach((b) => {
    b.hidden = false;
  });
})();
