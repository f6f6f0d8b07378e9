// Upload progress for big rosters: send the form with XHR to show bytes sent, then a "checking"
// state while the server validates. Without JavaScript the plain form post still works.
(function () {
  function init() {
    var form = document.getElementById("upload-form");
    if (!form || !window.FormData) return;
    var input = form.querySelector("input[type=file]"), button = form.querySelector("button[type=submit]");
    var box = document.getElementById("progress"), fill = box.querySelector(".progress-fill");
    var label = document.getElementById("progress-label"), error = document.getElementById("progress-error");
    input.addEventListener("change", function () {
      document.getElementById("file-name").textContent = input.files.length ? input.files[0].name : "";
    });
    function fail(message) {
      box.hidden = true; button.disabled = false; error.textContent = message; error.hidden = false;
    }
    form.addEventListener("submit", function (event) {
      if (!input.files.length) return;  // let the browser's "required" or the server explain
      event.preventDefault();
      var max = parseInt(form.dataset.maxBytes || "0", 10);
      if (max && input.files[0].size > max) { fail(form.dataset.tooLarge); return; }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      error.hidden = true; box.hidden = false; button.disabled = true; box.classList.remove("busy");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.round(e.loaded * 100 / e.total);
        fill.style.width = pct + "%"; label.textContent = form.dataset.uploading + " " + pct + "%";
      };
      xhr.upload.onload = function () {
        fill.style.width = "100%"; box.classList.add("busy"); label.textContent = form.dataset.checking;
      };
      xhr.onload = function () {
        if (xhr.status === 413) { fail(form.dataset.tooLarge); return; }
        if (xhr.responseURL && xhr.responseURL !== form.action) { window.location.assign(xhr.responseURL); return; }
        // The server answered with the upload page itself (an error shown in place): swap it in.
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var main = page.querySelector("main");
        if (!main) { fail(form.dataset.failed); return; }
        document.querySelector("main").replaceWith(main);
        init();
      };
      xhr.onerror = function () { fail(form.dataset.failed); };
      xhr.send(new FormData(form));
    });
  }
  init();
})();
