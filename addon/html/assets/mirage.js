// Mirage, written for cf-edge (facts 3.4): load the images the edge deferred.
(function () {
  "use strict";
  var images = document.querySelectorAll("img[data-cfsrc]");
  for (var i = 0; i < images.length; i++) {
    var img = images[i];
    img.setAttribute("src", img.getAttribute("data-cfsrc"));
    img.removeAttribute("data-cfsrc");
    img.style.display = "";
    img.style.visibility = "";
  }
})();
