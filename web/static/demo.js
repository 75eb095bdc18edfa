/* The demo page's currency toggle (the tracker reads data-analytics-currency before this runs). */
(function () {
  "use strict";
  var button = document.getElementById("currency");
  if (!button) return;
  var code = document.getElementById("currency-code");
  button.addEventListener("click", function () {
    var next = button.getAttribute("data-analytics-currency");
    var other = next === "EUR" ? "USD" : "EUR";
    document.querySelectorAll(".price").forEach(function (price) {
      price.textContent = (next === "EUR" ? "€ " + price.dataset.eur : "$ " + price.dataset.usd);
    });
    code.textContent = next;
    button.setAttribute("data-analytics-currency", other);
    button.textContent = "Show prices in " + other;
  });
})();
