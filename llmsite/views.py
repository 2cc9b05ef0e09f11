"""Site pages that belong to no single app: the chat page and the documents page.

Both are thin shells: the browser fills them from the JSON APIs (docs/api.md) with the plain
JavaScript modules under static/chat/. Their Content-Security-Policy is the site's strict one
(settings.CONTENT_SECURITY_POLICY) plus Trusted Types: the only HTML these pages ever insert
is what DOMPurify returns (static/chat/render.js).
"""

import base64
import hashlib
import re
from pathlib import Path

import drf_spectacular
from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.views import SpectacularSwaggerSplitView

# DOM sinks (innerHTML and friends) accept only TrustedHTML, and only DOMPurify's policy may make it.
TRUSTED_TYPES = {"require-trusted-types-for": ["'script'"], "trusted-types": ["dompurify"]}


@login_required
@csp_update(TRUSTED_TYPES)
def home(request: HttpRequest) -> HttpResponse:
    """The chat page; anonymous visitors go to the login page (which links to registration)."""
    context = {
        "max_new_tokens": settings.LLM_MAX_NEW_TOKENS,
        "default_max_new_tokens": settings.LLM_DEFAULT_MAX_NEW_TOKENS,
    }
    return render(request, "chat/chat.html", context)


@login_required
@csp_update(TRUSTED_TYPES)
def documents(request: HttpRequest) -> HttpResponse:
    """Upload or paste documents into collections, list them, delete them."""
    context = {
        "max_text_chars": settings.EMBEDDINGS_MAX_TEXT_CHARS,
        "max_batch": settings.EMBEDDINGS_MAX_BATCH,
        "max_file_bytes": settings.EMBEDDINGS_MAX_FILE_BYTES,
        "max_file_pages": settings.EMBEDDINGS_MAX_FILE_PAGES,
    }
    return render(request, "chat/documents.html", context)


def _inline_style_hash(template: Path) -> str:
    """The CSP source ('sha256-...') that allows exactly the one inline <style> block of `template`."""
    style = re.search(r"<style>(.*?)</style>", template.read_text(), re.DOTALL)
    if style is None:
        return "'none'"
    digest = hashlib.sha256(style.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# Swagger UI (/api/docs/) under the site's CSP: the split view serves its start-up script as a file
# (no inline script); its template's one inline <style> is allowed by its hash, recomputed from the
# installed drf-spectacular so an upgrade cannot silently widen or break the policy.
SWAGGER_TEMPLATE = Path(drf_spectacular.__file__).parent / "templates" / "drf_spectacular" / "swagger_ui.html"
api_docs = csp_update({"style-src": [_inline_style_hash(SWAGGER_TEMPLATE)]})(
    SpectacularSwaggerSplitView.as_view(url_name="schema")
)
