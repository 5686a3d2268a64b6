"""The web UI's words in English and Chinese.

Every visible string of the app goes through :func:`tr`, so switching the language in the
sidebar switches the whole interface. Keys are English snake_case names; a missing key is
a programming error and raises ``KeyError`` (a test renders every page in both
languages).
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "zh"]
LANGUAGES: dict[Language, str] = {"en": "English", "zh": "中文"}

_STRINGS: dict[str, tuple[str, str]] = {
    # app and navigation
    "app_title": ("RAG: grounded answers", "RAG：有据可查的回答"),
    "page_chat": ("Chat", "对话"),
    "page_kbs": ("Knowledge bases", "知识库"),
    "page_evals": ("Evaluations", "评测"),
    "language": ("Language", "语言"),
    # login
    "login_title": ("Sign in", "登录"),
    "password": ("Password", "密码"),
    "sign_in": ("Sign in", "登录"),
    "wrong_password": ("Wrong password.", "密码错误。"),
    "oidc_prompt": ("Sign in with your identity provider to continue.", "请使用身份提供方登录。"),
    "sign_out": ("Sign out", "退出登录"),
    # chat
    "no_kbs": (
        "No knowledge base yet. Create one and upload documents on the Knowledge bases page.",
        "还没有知识库。请在“知识库”页面创建知识库并上传文档。",
    ),
    "knowledge_base": ("Knowledge base", "知识库"),
    "generator": ("Generator", "生成模型"),
    "gen_embedded": ("Embedded (SmolLM2-135M, offline)", "内置（SmolLM2-135M，离线）"),
    "gen_hf": ("Local Hugging Face model", "本地 Hugging Face 模型"),
    "gen_openai": ("OpenAI-compatible server", "OpenAI 兼容服务"),
    "gen_qwen": ("Qwen2.5-Coder-0.5B (Chinese and English)", "Qwen2.5-Coder-0.5B（中英文）"),
    "qwen_missing": (
        "Qwen is not installed. Install it once with: rag models install qwen-0.5b",
        "Qwen 尚未安装。请先运行：rag models install qwen-0.5b",
    ),
    "embedding": ("Embedding model", "向量模型"),
    "emb_auto": (
        "Automatic (multilingual when the first documents are Chinese)",
        "自动（首批文档为中文时使用多语言模型）",
    ),
    "emb_minilm": ("all-MiniLM-L6-v2 (English)", "all-MiniLM-L6-v2（英文）"),
    "emb_multilingual": (
        "multilingual-e5-small (Chinese, mixed)",
        "multilingual-e5-small（中文、混合）",
    ),
    "emb_switched": (
        "These documents are mostly Chinese, so this base now embeds with {model}.",
        "这些文档以中文为主，因此本知识库改用 {model} 生成向量。",
    ),
    "model_path": ("Model folder or .gguf file", "模型目录或 .gguf 文件"),
    "model_name": ("Served model name", "服务的模型名"),
    "base_url": ("Server URL", "服务地址"),
    "retrieval": ("Retrieval", "检索"),
    "retrieval_mode": ("Mode", "方式"),
    "top_k": ("Chunks to retrieve (k)", "检索片段数 (k)"),
    "show_timings": ("Show timings", "显示耗时"),
    "conversations": ("Conversations", "会话"),
    "new_chat": ("New chat", "新对话"),
    "delete_chat": ("Delete this chat", "删除此对话"),
    "ask_placeholder": ("Ask a question about {kb}", "向 {kb} 提问"),
    "refused": (
        "The sources do not answer this question, so no answer was made up.",
        "资料中没有这个问题的答案，因此没有编造回答。",
    ),
    "unsupported": (
        "This answer cites no source: treat it with care.",
        "此回答没有引用任何来源，请谨慎对待。",
    ),
    "sources": ("Sources", "来源"),
    "page_n": ("page {page}", "第 {page} 页"),
    "inferred": ("attributed by matching", "按文本匹配归属"),
    "timings": ("Timings (seconds)", "耗时（秒）"),
    "answer_failed": ("Could not answer: {error}", "无法回答：{error}"),
    "thinking": ("Searching and writing…", "正在检索并生成…"),
    "kb_missing": (
        "This chat's knowledge base {kb!r} no longer exists; its messages stay readable.",
        "此对话的知识库 {kb!r} 已不存在；消息仍可查看。",
    ),
    # knowledge bases
    "create_kb": ("Create a knowledge base", "创建知识库"),
    "kb_name": ("Name", "名称"),
    "create": ("Create", "创建"),
    "created": ("Created {kb}.", "已创建 {kb}。"),
    "upload": ("Upload documents", "上传文档"),
    "upload_help": (
        "PDF, DOCX, PPTX, XLSX, HTML, Markdown, TXT, CSV, EML, EPUB; at most {mb:g} MB each.",
        "PDF、DOCX、PPTX、XLSX、HTML、Markdown、TXT、CSV、EML、EPUB；每个文件不超过 {mb:g} MB。",
    ),
    "ingest": ("Add to knowledge base", "加入知识库"),
    "ingesting": ("Indexing {name}…", "正在索引 {name}…"),
    "ingest_done": (
        "{new} new, {updated} updated, {skipped} unchanged, {failed} failed; "
        "{chunks} chunks added.",
        "新增 {new}，更新 {updated}，未变 {skipped}，失败 {failed}；新增 {chunks} 个片段。",
    ),
    "file_failed": ("{name}: {error}", "{name}：{error}"),
    "too_large": (
        "{name} is {size:.1f} MB, over the {limit:g} MB limit; it was not saved.",
        "{name} 大小为 {size:.1f} MB，超过 {limit:g} MB 的上限，未保存。",
    ),
    "documents": ("Documents", "文档"),
    "no_documents": ("No documents yet.", "还没有文档。"),
    "col_source": ("Document", "文档"),
    "col_status": ("Status", "状态"),
    "col_size": ("Size", "大小"),
    "col_chunks": ("Chunks", "片段"),
    "col_error": ("Error", "错误"),
    "remove_doc": ("Remove a document", "移除文档"),
    "remove": ("Remove", "移除"),
    "removed": ("Removed {name}.", "已移除 {name}。"),
    "health": ("Health", "健康检查"),
    "check": ("Check", "检查"),
    "check_ok": (
        "Consistent: {docs} documents, {chunks} chunks in the catalog, FAISS and BM25.",
        "一致：{docs} 个文档，目录、FAISS 与 BM25 中均为 {chunks} 个片段。",
    ),
    "check_bad": ("Problems found:", "发现问题："),
    "reindex": ("Re-index", "重建索引"),
    "reindexed": ("Rebuilt the indexes from the catalog.", "已根据目录重建索引。"),
    "delete_kb": ("Delete knowledge base", "删除知识库"),
    "confirm_delete": (
        "Type {kb} to confirm. This removes its documents, vectors and index files.",
        "输入 {kb} 以确认。这将删除其文档、向量和索引文件。",
    ),
    "deleted": ("Deleted {kb}.", "已删除 {kb}。"),
    "summary": (
        "{docs} documents · {chunks} chunks · {model} · {kind} index",
        "{docs} 个文档 · {chunks} 个片段 · {model} · {kind} 索引",
    ),
    # evaluations
    "eval_runs": ("Evaluation runs", "评测记录"),
    "error_breakdown": (
        "Where answers were lost (answerable questions)",
        "答案在哪一步丢失（可回答的问题）",
    ),
    "no_runs": (
        "No evaluation runs yet. Start one below or with `rag eval run`.",
        "还没有评测记录。可在下方启动，或使用 `rag eval run`。",
    ),
    "open_run": ("Run", "记录"),
    "report_missing": (
        "The report folder {path} is gone; the run's headline scores are below.",
        "报告目录 {path} 已不存在；以下是该记录的主要分数。",
    ),
    "download_report": ("Download report.json", "下载 report.json"),
    "download_md": ("Download report.md", "下载 report.md"),
    "start_run": ("Start a run", "启动评测"),
    "dataset": (
        "Dataset (squad:PATH, cmrc:PATH, beir:FOLDER or a .jsonl file)",
        "数据集（squad:路径、cmrc:路径、beir:目录 或 .jsonl 文件）",
    ),
    "strategies": ("Strategies", "策略"),
    "articles": ("Articles", "文章数"),
    "questions": ("Questions", "问题数"),
    "out_dir": ("Report folder", "报告目录"),
    "start": ("Start", "开始"),
    "run_started": (
        "Started; the run appears in the list and its log is {log}.",
        "已启动；记录会出现在列表中，日志位于 {log}。",
    ),
    "status": ("Status", "状态"),
}


def tr(key: str, language: Language, **values: object) -> str:
    """The text for ``key`` in ``language``, with ``values`` filled in.

    Raises:
        KeyError: no such key (a bug in the app, not a user error).
    """
    english, chinese = _STRINGS[key]
    text = chinese if language == "zh" else english
    return text.format(**values) if values else text


def keys() -> tuple[str, ...]:
    """Every key (for tests that check both languages are complete)."""
    return tuple(_STRINGS)
