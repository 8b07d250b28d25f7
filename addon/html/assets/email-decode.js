// Email Obfuscation decoder, written for cf-edge from the documented encoding (facts 3.1.6):
// data-cfemail is a key byte then each UTF-8 byte of the address XOR the key, in hex.
(function () {
  "use strict";
  var PROTECTION = "/cdn-cgi/l/email-protection#";
  function decode(hex) {
    var key = parseInt(hex.substr(0, 2), 16), escaped = "";
    for (var i = 2; i < hex.length; i += 2) {
      var b = parseInt(hex.substr(i, 2), 16) ^ key;
      escaped += "%" + ("0" + b.toString(16)).slice(-2);
    }
    return decodeURIComponent(escaped);
  }
  function run() {
    var links = document.querySelectorAll("a[href*='" + PROTECTION + "']");
    for (var i = 0; i < links.length; i++) {
      var href = links[i].getAttribute("href");
      var at = href.indexOf(PROTECTION);
      try { links[i].setAttribute("href", "mailto:" + decode(href.slice(at + PROTECTION.length))); }
      catch (e) { /* leave a link that does not decode */ }
    }
    var hidden = document.querySelectorAll(".__cf_email__[data-cfemail]");
    for (var j = 0; j < hidden.length; j++) {
      var el = hidden[j];
      try {
        // an address in text (an <a>) or in a link (a <span>) becomes text again
        el.parentNode.replaceChild(document.createTextNode(decode(el.getAttribute("data-cfemail"))), el);
      } catch (e) { /* leave it */ }
    }
    var script = document.currentScript;
    if (script && script.parentNode) script.parentNode.removeChild(script);
  }
  run();
})();
