// The web inbox's little JavaScript: the live list (server-sent events), search as you type, clearing the inbox,
// and the faults panel. Rows arrive as HTML the server rendered and escaped; nothing from a message is ever
// interpreted here, and the page's CSP allows no inline script.
"use strict";

(function () {
  var messages = document.getElementById("messages");
  if (messages) {
    initInbox(messages);
  }
  var faultForm = document.getElementById("fault-form");
  if (faultForm) {
    initFaults(faultForm);
  }

  function initInbox(tbody) {
    var total = document.getElementById("total");
    var empty = document.getElementById("empty");
    var liveState = document.getElementById("live-state");
    var search = document.getElementById("q");
    var clear = document.getElementById("clear-inbox");
    var maxRows = parseInt(tbody.dataset.maxRows || "200", 10);
    var source = null;
    var typing = null;

    function refreshEmpty() {
      empty.hidden = tbody.rows.length > 0;
    }

    function connect() {
      if (source) {
        source.close();
      }
      var q = search.value.trim();
      document.body.dataset.live = "connecting";
      source = new EventSource("/inbox/events" + (q ? "?q=" + encodeURIComponent(q) : ""));
      source.addEventListener("reset", function (event) {
        var data = JSON.parse(event.data);
        tbody.innerHTML = data.html;
        total.textContent = data.total;
        refreshEmpty();
        liveState.textContent = " · live";
        document.body.dataset.live = "on";
        document.body.dataset.query = q;
      });
      source.addEventListener("added", function (event) {
        var data = JSON.parse(event.data);
        total.textContent = data.total;
        if (data.html && !document.getElementById("m-" + data.id)) {
          tbody.insertAdjacentHTML("afterbegin", data.html);
          while (tbody.rows.length > maxRows) {
            tbody.deleteRow(-1);
          }
        }
        refreshEmpty();
      });
      source.addEventListener("cleared", function () {
        tbody.innerHTML = "";
        total.textContent = "0";
        refreshEmpty();
      });
      source.onerror = function () {
        liveState.textContent = " · reconnecting…";
        document.body.dataset.live = "off";
      };
    }

    function searchNow() {
      var q = search.value.trim();
      history.replaceState(null, "", q ? "/?q=" + encodeURIComponent(q) : "/");
      connect();
    }

    search.form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearTimeout(typing);
      searchNow();
    });
    search.addEventListener("input", function () {
      clearTimeout(typing);
      typing = setTimeout(searchNow, 250);
    });

    clear.hidden = false;
    clear.addEventListener("click", function () {
      fetch("/sandbox/emails", { method: "DELETE" }).then(function (response) {
        if (response.ok) {
          tbody.innerHTML = "";
          total.textContent = "0";
          refreshEmpty();
        }
      });
    });

    connect();
  }

  function initFaults(form) {
    var route = document.getElementById("fault-route");
    var kind = document.getElementById("fault-kind");
    var latency = document.getElementById("fault-latency");
    var retryAfter = document.getElementById("fault-retry-after");
    var rate = document.getElementById("fault-rate");
    var count = document.getElementById("fault-count");
    var status = document.getElementById("fault-status");
    var active = document.getElementById("active-faults");
    var clearAll = document.getElementById("faults-clear");

    function relevant() {
      var k = kind.value;
      var isError = k === "503" || k === "500" || k === "429";
      latency.closest(".field").hidden = k !== "slow";
      retryAfter.closest(".field").hidden = k !== "429";
      rate.closest(".field").hidden = !isError;
    }

    function spec() {
      var k = kind.value;
      var s = {};
      if (k === "503" || k === "500" || k === "429") {
        s.error_status = parseInt(k, 10);
        var r = parseFloat(rate.value);
        if (!isNaN(r) && r < 1) {
          s.error_rate = r;
        }
        if (k === "429") {
          s.retry_after = parseInt(retryAfter.value || "1", 10);
        }
      } else if (k === "slow") {
        s.latency_ms = parseFloat(latency.value || "0");
      } else if (k === "drop") {
        s.drop_connection = true;
      } else if (k === "hang") {
        s.hang = true;
      } else {
        s.accept_then_drop = true;
      }
      if (count.value) {
        s.count = parseInt(count.value, 10);
      }
      return s;
    }

    function render(table) {
      active.textContent = "";
      var routes = Object.keys(table);
      if (routes.length === 0) {
        var none = active.insertRow();
        none.className = "none";
        var cell = none.insertCell();
        cell.colSpan = 3;
        cell.textContent = "none";
      }
      routes.forEach(function (name) {
        var row = active.insertRow();
        row.dataset.route = name;
        row.insertCell().textContent = name;
        var code = document.createElement("code");
        code.textContent = JSON.stringify(table[name]);
        row.insertCell().appendChild(code);
        var off = document.createElement("button");
        off.type = "button";
        off.textContent = "Switch off";
        off.setAttribute("aria-label", "Switch off the fault on " + name);
        off.addEventListener("click", function () {
          change(function (current) {
            delete current[name];
            return current;
          }, name + ": fault off");
        });
        row.insertCell().appendChild(off);
      });
      document.body.dataset.faults = routes.join(",");
    }

    function say(text) {
      status.textContent = text;
    }

    function change(edit, done) {
      return fetch("/sandbox/faults")
        .then(function (response) {
          return response.json();
        })
        .then(function (current) {
          return fetch("/sandbox/faults", {
            method: "PUT",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(edit(current)),
          });
        })
        .then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) {
              say("Refused: " + (body.message || response.status));
              return;
            }
            render(body);
            say(done);
          });
        })
        .catch(function (error) {
          say("Could not reach the sandbox: " + error);
        });
    }

    kind.addEventListener("change", relevant);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = route.value;
      var wanted = spec();
      change(function (current) {
        current[name] = wanted;
        return current;
      }, name + ": " + kind.options[kind.selectedIndex].text + " on");
    });
    clearAll.addEventListener("click", function () {
      fetch("/sandbox/faults", { method: "DELETE" }).then(function (response) {
        if (response.ok) {
          render({});
          say("All faults off");
        }
      });
    });

    form.hidden = false;
    relevant();
    fetch("/sandbox/faults")
      .then(function (response) {
        return response.json();
      })
      .then(render);
  }
})();
