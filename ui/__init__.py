"""The Streamlit web UI: chat, knowledge bases and evaluation results (`rag ui`)."""
