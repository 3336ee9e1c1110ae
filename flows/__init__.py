"""The conversation engine and the flows. No HTTP, no aiogram, no twilio here."""
