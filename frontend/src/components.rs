//! The building blocks of the page, one component per file.

// `#[component]` derives a props builder whose methods are `pub`; in these crate-private
// modules they are unreachable by design. The macro drops lint attributes written on the
// component itself, so the allowance has to sit here.
#![allow(unreachable_pub)]

mod account_form;
mod avatar;
mod bell;
mod composer;
mod header;
mod inbox_list;
mod invite_form;
mod lock;
mod message_actions;
mod message_editor;
mod message_list;
mod message_row;
mod new_room_dialog;
mod nick_form;
mod presence;
mod quiet_hours;
mod reaction_chips;
mod reaction_picker;
mod reply_bar;
mod reply_quote;
mod rich_text;
mod room_notify;
mod sidebar;
mod sign_in;

pub(crate) use account_form::AccountForm;
pub(crate) use avatar::Avatar;
pub(crate) use bell::Bell;
pub(crate) use composer::Composer;
pub(crate) use header::Header;
pub(crate) use inbox_list::InboxList;
pub(crate) use invite_form::InviteForm;
pub(crate) use lock::Lock;
pub(crate) use message_actions::MessageActions;
pub(crate) use message_editor::MessageEditor;
pub(crate) use message_list::MessageList;
pub(crate) use message_row::MessageRow;
pub(crate) use new_room_dialog::NewRoomDialog;
pub(crate) use nick_form::NickForm;
pub(crate) use presence::Presence;
pub(crate) use quiet_hours::QuietHours;
pub(crate) use reaction_chips::ReactionChips;
pub(crate) use reaction_picker::ReactionPicker;
pub(crate) use reply_bar::ReplyBar;
pub(crate) use reply_quote::ReplyQuote;
pub(crate) use rich_text::RichText;
pub(crate) use room_notify::RoomNotify;
pub(crate) use sidebar::Sidebar;
pub(crate) use sign_in::SignIn;
