// filterdns console: small enhancements only. Every page works without this file.
//  - overrides: count the minutes left down and drop a row when its override expires;
//  - charts: show a bar's numbers on tap (touch screens have no hover tooltips).
"use strict";

(function () {
  function updateOverrides() {
    var now = Date.now() / 1000;
    document.querySelectorAll("tr[data-expires]").forEach(function (row) {
      var left = parseFloat(row.getAttribute("data-expires")) - now;
      if (left <= 0) {
        row.remove();
        return;
      }
      var cell = row.querySelector(".time-left");
      if (cell) {
        cell.textContent = Math.ceil(left / 60) + " min";
      }
    });
  }

  function setUpChartTips() {
    var bars = document.querySelectorAll("svg.chart .bar[data-tip]");
    if (!bars.length) {
      return;
    }
    var tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    tip.setAttribute("role", "status");
    document.body.appendChild(tip);
    bars.forEach(function (bar) {
      bar.addEventListener("click", function (event) {
        tip.textContent = bar.getAttribute("data-tip");  // text, never HTML
        tip.style.left = event.pageX + 8 + "px";
        tip.style.top = event.pageY - 36 + "px";
        tip.hidden = false;
        event.stopPropagation();
      });
    });
    document.addEventListener("click", function () {
      tip.hidden = true;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("tr[data-expires]")) {
      updateOverrides();
      setInterval(updateOverrides, 5000);
    }
    setUpChartTips();
  });
})();
