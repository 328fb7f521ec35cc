/* The tracker page, enhanced: polls its status JSON and updates the page in place; draws the map.
   The page is complete without this file: every part of it is rendered by the server. */
(function () {
  "use strict";

  var main = document.getElementById("main");
  if (!main || !main.dataset.statusUrl) {
    return;
  }
  var statusUrl = main.dataset.statusUrl;
  var pollMs = Math.max(1, parseInt(main.dataset.pollSeconds, 10) || 15) * 1000;
  var version = parseInt(main.dataset.version, 10) || 0;
  var reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var timer = null;

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var el = byId(id);
    if (!el) {
      return;
    }
    el.textContent = text || "";
    el.hidden = !text;
  }

  function lastEntryId() {
    var first = document.querySelector("#journal .entry");
    return first ? parseInt(first.dataset.id, 10) || 0 : 0;
  }

  function renderSteps(data) {
    var list = byId("steps");
    list.hidden = data.step === null;
    data.steps.forEach(function (step, index) {
      var item = list.querySelector('[data-step="' + index + '"]');
      if (!item) {
        return;
      }
      item.className = "step step-" + step.state;
      if (step.state === "current") {
        item.setAttribute("aria-current", "step");
      } else {
        item.removeAttribute("aria-current");
      }
    });
  }

  function renderCrew(crew) {
    var list = byId("crew");
    list.textContent = "";
    crew.forEach(function (person) {
      var item = document.createElement("li");
      item.className = "crew-member";
      var avatar;
      if (person.photo) {
        avatar = document.createElement("img");
        avatar.src = person.photo;
        avatar.alt = "";
        avatar.width = 56;
        avatar.height = 56;
      } else {
        avatar = document.createElement("span");
        avatar.setAttribute("aria-hidden", "true");
        avatar.textContent = person.first_name.charAt(0).toUpperCase();
      }
      avatar.className = person.photo ? "avatar" : "avatar avatar-initial";
      var name = document.createElement("span");
      name.className = "crew-name";
      name.textContent = person.first_name;
      item.appendChild(avatar);
      item.appendChild(name);
      list.appendChild(item);
    });
    byId("crew-card").hidden = crew.length === 0;
  }

  function renderEntry(entry) {
    var template = byId("entry-template");
    var item = template.content.firstElementChild.cloneNode(true);
    item.dataset.id = entry.id;
    if (entry.from_customer) {
      item.classList.add("entry-customer");
    }
    item.querySelector(".entry-label").textContent = entry.label;
    var time = item.querySelector(".entry-time");
    time.textContent = entry.time_text;
    time.setAttribute("datetime", entry.time);
    var notes = item.querySelector(".entry-notes");
    notes.textContent = entry.notes;
    notes.hidden = !entry.notes;
    var files = item.querySelector(".entry-files");
    files.textContent = "";
    entry.files.forEach(function (file) {
      var link = document.createElement("a");
      link.href = file.url;
      link.rel = "noreferrer";
      if (file.image) {
        link.className = "entry-photo";
        var image = document.createElement("img");
        image.src = file.url;
        image.alt = (template.dataset.photoLabel || "") + " " + entry.label;
        image.loading = "lazy";
        link.appendChild(image);
      } else {
        link.className = "entry-file";
        link.textContent = file.name;
      }
      files.appendChild(link);
    });
    files.hidden = entry.files.length === 0;
    if (!reducedMotion) {
      item.classList.add("entry-new");
    }
    return item;
  }

  function renderEntries(entries) {
    var list = byId("journal");
    var newest = lastEntryId();
    entries.forEach(function (entry) {
      if (entry.id <= newest) {
        return; // already shown (a revalidated response repeats its body)
      }
      var empty = byId("journal-empty");
      if (empty) {
        empty.remove();
      }
      list.insertBefore(renderEntry(entry), list.firstChild);
    });
  }

  function renderRating(data) {
    var card = byId("rating");
    var form = byId("rating-form");
    var done = byId("rating-done");
    form.hidden = !data.can_rate;
    done.hidden = !data.rating;
    if (data.rating) {
      byId("rating-score").textContent = data.rating.score;
    }
    card.hidden = !data.can_rate && !data.rating;
  }

  function render(data) {
    var status = byId("status");
    var changed = byId("status-label").textContent !== data.label;
    status.className = "card status tone-" + data.tone;
    setText("status-label", data.label);
    setText("status-detail", data.detail);
    setText("eta", data.eta ? data.eta.text : "");
    renderSteps(data);
    var when = byId("when-text");
    when.textContent = data.window ? data.window.text : "";
    if (data.window) {
      when.setAttribute("datetime", data.window.start);
    }
    byId("when").hidden = !data.window;
    renderCrew(data.crew);
    renderEntries(data.entries);
    renderRating(data);
    if (changed) {
      byId("live").textContent = data.label + (data.eta ? ". " + data.eta.text : "");
      if (!reducedMotion) {
        status.classList.add("status-changed");
        window.setTimeout(function () {
          status.classList.remove("status-changed");
        }, 1200);
      }
    }
    version = data.version;
    main.dataset.version = String(version);
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, pollMs);
  }

  function poll() {
    if (document.hidden) {
      return; // resumed by visibilitychange
    }
    var url = statusUrl + "?since=" + lastEntryId();
    window
      .fetch(url, { cache: "no-cache", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404 || response.status === 410) {
          window.location.reload(); // the server's page says why, plainly
          return null;
        }
        schedule();
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data && data.version !== version) {
          render(data);
        }
      })
      .catch(schedule);
  }

  function startMap() {
    var box = byId("map");
    if (!box || !window.L || !box.dataset.tiles) {
      return;
    }
    var point = [parseFloat(box.dataset.lat), parseFloat(box.dataset.lng)];
    box.hidden = false;
    var map = window.L.map(box, { scrollWheelZoom: false }).setView(point, 15);
    window.L.tileLayer(box.dataset.tiles, {
      maxZoom: 19,
      attribution: box.dataset.attribution,
      referrerPolicy: "no-referrer",
    }).addTo(map);
    window.L.circleMarker(point, { radius: 10, weight: 3, className: "map-marker" }).addTo(map);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      poll();
    }
  });
  startMap();
  schedule();
})();
