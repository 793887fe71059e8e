// Typeset the math of the pages with KaTeX (vendored in javascripts/katex/, no CDN).
//
// pymdownx.arithmatex in generic mode wraps inline math as <span class="arithmatex">\(...\)</span>
// and display math as <div class="arithmatex">\[...\]</div>; only those elements are rendered,
// so a "$" elsewhere in the text (or in code) is never taken for math.
(function () {
  "use strict";

  function renderMath(root) {
    var elements = root.querySelectorAll(".arithmatex");
    for (var i = 0; i < elements.length; i++) {
      renderMathInElement(elements[i], {
        delimiters: [
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true },
        ],
        throwOnError: false,
      });
    }
  }

  if (typeof document$ !== "undefined") {
    // Material for MkDocs: also after an instant-navigation page change.
    document$.subscribe(function () {
      renderMath(document.body);
    });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      renderMath(document.body);
    });
  } else {
    renderMath(document.body);
  }
})();
