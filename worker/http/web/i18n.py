"""The pages' words, in Chinese (the default: HR in Shanghai) and English.

One table, key -> (zh-CN, en), so a missing translation is visible in review as a short tuple.
Roster validation speaks English (it is shared with the CLI and the API); `roster_error` puts
its known reasons into Chinese and falls back to the original text for anything new.
"""

from __future__ import annotations

import re
from typing import Any

from schedules.vocabulary import AUTO_RENEWAL_LABELS, DEADLINE_LABELS, REASON_LABELS, STAGE_LABELS, reason_label
from worker.registry.roster import CHINESE_HEADERS

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"

TEXT: dict[str, tuple[str, str]] = {
    "product": ("居住证签注提醒", "Residence Permit Reminders"),
    "nav.overview": ("概览", "Overview"), "nav.holders": ("员工", "Employees"),
    "nav.upload": ("导入花名册", "Import roster"), "nav.export": ("导出", "Export"),
    "flash.leavers_deleted": ("已删除 {n} 名离职员工的信息。", "Deleted {n} leaver(s) and everything held on them."),
    "up.full_roster": ("这是完整花名册：不在文件中的员工视为离职并删除（预览中会先列出）",
                       "This file lists everyone: holders missing from it have left and are deleted (listed in the preview first)"),
    "nav.activity": ("操作记录", "Activity"), "nav.users": ("用户", "Users"), "nav.tokens": ("API 令牌", "API tokens"),
    "nav.account": ("我的账户", "My account"),
    "role.viewer": ("查看者", "viewer"), "role.editor": ("编辑者", "editor"), "role.admin": ("管理员", "admin"),
    "pw.title_invite": ("设置登录密码", "Set your password"), "pw.title_reset": ("重设密码", "Reset your password"),
    "pw.lead": ("账户：{email}。密码至少 {n} 个字符，且不能是常见密码。", "Account: {email}. At least {n} characters, and not a common password."),
    "pw.new": ("新密码", "New password"), "pw.again": ("再次输入", "Once more"), "pw.submit": ("保存并登录", "Save and sign in"),
    "pw.mismatch": ("两次输入的密码不一致。", "The two passwords differ."),
    "pw.password_short": ("密码太短：至少 {n} 个字符。", "Too short: at least {n} characters."),
    "pw.password_long": ("密码太长。", "That password is too long."),
    "pw.password_common": ("这是常见密码（或与邮箱相同），容易被猜中，请换一个。", "That is a common password (or your email): easy to guess. Choose another."),
    "pw.link_gone": ("此链接已过期或已使用。请联系管理员重新发送。", "This link has expired or was already used. Ask your admin for a new one."),
    "flash.password_set": ("密码已设置，您已登录。", "Your password is set and you are signed in."),
    "forgot.title": ("重设密码", "Reset your password"),
    "forgot.lead": ("输入您的登录邮箱，我们会发送一个 2 小时内有效的重设链接。", "Enter your email: we send a link valid for 2 hours."),
    "forgot.submit": ("发送重设链接", "Send the link"),
    "forgot.done": ("如果该邮箱有账户且系统已配置邮件，重设链接已发出。没有收到请联系管理员。",
                    "If that email has an account and email is configured, a link is on its way. No email? Ask your admin."),
    "account.title": ("我的账户", "My account"), "account.sessions": ("已登录的设备", "Signed-in devices"),
    "account.device": ("浏览器", "Browser"), "account.since": ("登录于", "Signed in"), "account.seen": ("最近使用", "Last seen"),
    "account.this": ("当前", "this one"), "account.end": ("退出该设备", "Sign out"),
    "account.end_others": ("退出其他所有设备", "Sign out everywhere else"),
    "account.token_session": ("您是用团队令牌登录的：没有个人账户。", "You signed in with a team token: there is no personal account."),
    "users.title": ("用户", "Users"), "users.lead": ("团队成员及其角色：查看者只能查看；编辑者可导入和修改员工信息；管理员还可管理用户和令牌。",
                                              "People of the team and their roles: viewers read; editors import and change holders; admins also manage users and tokens."),
    "users.role": ("角色", "Role"), "users.state": ("状态", "State"), "users.last": ("最近登录", "Last sign-in"),
    "users.active": ("已启用（{n} 个会话）", "active ({n} session(s))"), "users.invited_state": ("已邀请，未设置密码", "invited, no password yet"),
    "users.set_role": ("修改", "Change"), "users.reset": ("重设密码链接", "Reset link"),
    "users.end_sessions": ("结束所有会话", "End sessions"), "users.remove": ("移除", "Remove"),
    "users.invite": ("邀请成员", "Invite someone"), "users.invite_submit": ("发送邀请", "Invite"),
    "users.invited": ("已邀请 {email}。请把此一次性链接发给对方（72 小时内有效，仅显示这一次）：{url}",
                      "Invited {email}. Send them this one-time link (valid 72 hours, shown only now): {url}"),
    "users.invited_sent": ("已邀请 {email}，邀请邮件已发出。链接（72 小时内有效，仅显示这一次）：{url}",
                           "Invited {email}; the invitation is emailed. Link (valid 72 hours, shown only now): {url}"),
    "users.reset_link": ("{email} 的重设密码链接（2 小时内有效，仅显示这一次）：{url}",
                         "Reset link for {email} (valid 2 hours, shown only now): {url}"),
    "users.reset_emailed": ("重设密码链接已发到 {email}。", "A reset link is on its way to {email}."),
    "users.removed": ("已移除 {email}，其所有会话已结束。", "Removed {email}; their sessions are ended."),
    "users.sessions_ended": ("已结束 {email} 的 {n} 个会话。", "Ended {n} session(s) of {email}."),
    "users.role_set": ("{email} 的角色已改为 {role}。", "{email} is now {role}."),
    "users.not_self": ("不能移除自己或取消自己的管理员角色。", "You cannot remove yourself or drop your own admin role."),
    "err.user_exists": ("该邮箱已有账户。", "That email already has an account."),
    "err.bad_email": ("请填写有效的邮箱地址。", "Please enter a valid email address."),
    "tokens.title": ("API 令牌", "API tokens"), "tokens.lead": ("供人事系统对接使用。只读令牌只能查询；读写令牌可修改数据。令牌只在创建时显示一次。",
                                                          "For your HR systems. A read token can only read; a write token can change data. A token is shown once, when created."),
    "tokens.name": ("名称", "Name"), "tokens.scope": ("权限", "Scope"), "tokens.created": ("创建", "Created"),
    "tokens.used": ("最近使用", "Last used"), "tokens.revoke": ("吊销", "Revoke"), "tokens.new": ("新建令牌", "New token"),
    "tokens.create": ("创建", "Create"), "tokens.scope_read": ("只读", "read"), "tokens.scope_write": ("读写", "write"),
    "tokens.created_once": ("令牌 {name} 已创建。请立即保存（只显示这一次）：{token}", "Token {name} created. Store it now (shown only once): {token}"),
    "tokens.revoked": ("令牌 {name} 已吊销。", "Token {name} is revoked."),
    "audit.title": ("操作记录", "Activity"), "audit.lead": ("谁在何时修改了什么（个人信息已遮蔽）。", "Who changed what, when (personal data masked)."),
    "audit.at": ("时间", "When"), "audit.actor": ("操作人", "Who"), "audit.action": ("操作", "What"),
    "audit.changes": ("变更", "Changes"), "audit.anyone": ("所有人", "Anyone"), "audit.any_action": ("所有操作", "Any action"),
    "audit.on": ("日期", "Day"), "audit.filter": ("筛选", "Filter"), "audit.none": ("没有记录。", "Nothing recorded."),
    "audit.older": ("更早的记录", "Older"), "h.audit": ("操作记录", "Activity"),
    "act.holder.created": ("新增员工", "holder created"), "act.holder.updated": ("修改员工信息", "holder updated"),
    "act.holder.renewal_confirmed": ("确认续签", "renewal confirmed"),
    "act.holder.renewal_reported": ("员工回复已续签", "renewal reported by reply"),
    "act.holder.paused": ("暂停提醒", "reminders paused"), "act.holder.resumed": ("恢复提醒", "reminders resumed"),
    "act.holder.opted_out": ("退订短信", "opted out of SMS"), "act.holder.deleted": ("删除员工", "holder deleted"),
    "act.roster.imported": ("导入花名册", "roster imported"), "act.user.added": ("邀请用户", "user invited"),
    "act.user.activated": ("用户设置密码", "user set their password"), "act.user.password_reset": ("重设密码", "password reset"),
    "act.user.role_changed": ("修改角色", "role changed"), "act.user.removed": ("移除用户", "user removed"),
    "act.user.sessions_ended": ("结束会话", "sessions ended"),
    "act.user.reset_link_issued": ("发出重设密码链接", "reset link issued"), "act.token.created": ("创建令牌", "token created"),
    "act.token.rotated": ("更换令牌", "token rotated"), "act.token.revoked": ("吊销令牌", "token revoked"),
    "act.team.created": ("创建团队", "team created"), "act.team.updated": ("修改团队设置", "team settings changed"),
    "nav.team": ("团队设置", "Team"),
    "team.title": ("团队设置", "Team settings"),
    "team.channels": ("提醒渠道", "Reminder channels"),
    "team.channels_lead": ("提醒按此顺序尝试：员工在前一个渠道联系不到时，改用下一个。",
                           "Reminders try the channels in this order: when a holder cannot be reached on one, the next."),
    "team.backend": ("本服务的发送方式", "Sent through"),
    "team.no_backend": ("未配置（此渠道的提醒会改走下一个渠道）", "not configured (reminders for it go to the next channel)"),
    "team.test": ("发送测试消息", "Send a test message"),
    "team.test_lead": ("向一个手机号、邮箱或企业微信账号发送一条标明“测试”的消息，检查渠道是否配置正确，并查看服务商的答复。",
                       "Send one message marked as a test to a mobile number, an email address or a WeCom userid, to check the channel and see what the provider answered."),
    "team.test_to": ("发送到", "Send to"),
    "team.test_send": ("发送测试", "Send test"),
    "team.test_sent": ("测试消息已由 {notifier} 通过{channel}发送到 {to}：{answer}",
                       "Test {channel} to {to} through {notifier}: {answer}"),
    "team.test_failed": ("测试消息未发出（{notifier}，{channel}，{to}）：{answer}",
                         "The test {channel} to {to} through {notifier} was not accepted: {answer}"),
    "team.test_bad": ("无法发送测试：{why}", "Cannot send a test: {why}"),
    "team.test_config": ("发送渠道配置有误：{why}", "The channel is misconfigured: {why}"),
    "team.test_limited": ("测试消息发送太频繁，请一分钟后再试。", "Too many test messages: try again in a minute."),
    "nav.signout": ("退出", "Sign out"), "lang.switch": ("English", "中文"),
    "login.title": ("HR 登录", "HR sign-in"),
    "login.email": ("邮箱", "Email"), "login.password": ("密码", "Password"),
    "login.forgot": ("忘记密码？", "Forgot your password?"),
    "login.with_token": ("用团队令牌登录（系统对接用）", "Sign in with a team token (for integrations)"),
    "login.bad_password": ("邮箱或密码不正确。", "Wrong email or password."),
    "login.throttled": ("登录失败次数过多，请 15 分钟后再试。", "Too many failed sign-ins: try again in 15 minutes."),
    "login.lead": ("请输入贵团队的访问令牌（以 pwt_ 开头，由系统管理员提供）。",
                   "Enter your team's access token (it starts with pwt_; your administrator has it)."),
    "login.token": ("团队令牌", "Team token"), "login.submit": ("登录", "Sign in"),
    "login.bad": ("令牌无效，请检查后重试。", "That token is not valid. Please check it and try again."),
    "login.signed_out": ("您已安全退出。", "You have signed out."),
    "login.expired": ("登录已过期，请重新登录。", "Your session has ended. Please sign in again."),
    "ov.title": ("概览", "Overview"), "ov.today": ("今天 {date}", "Today {date}"),
    "ov.total": ("在册员工", "Employees on file"),
    "ov.attention": ("需要处理", "Needs attention"),
    "ov.this_week": ("本周截止 {n} 人", "{n} due this week"),
    "ov.attention_lead": ("按紧急程度排列：期限越近越靠前。", "Most urgent first: the nearest deadline on top."),
    "ov.more": ("按截止日期显示最近的 {shown} 人，另有 {n} 人：点上方的阶段查看全部。",
                "Showing the {shown} nearest deadlines; {n} more: open a stage above to see them all."),
    "ov.none": ("目前没有需要处理的员工。", "Nobody needs attention right now."),
    "ov.empty": ("还没有员工数据。先导入花名册吧。", "No employees yet. Start by importing your roster."),
    "col.external_id": ("工号", "ID"), "col.name": ("姓名", "Name"), "col.stage": ("阶段", "Stage"),
    "col.why": ("状态", "Status"), "col.deadline": ("截止日期", "Deadline"), "col.days": ("剩余", "Left"),
    "col.expires_on": ("有效期至", "Expires"), "col.contact": ("联系方式", "Contact"),
    "col.row": ("行", "Row"), "col.field": ("列", "Column"), "col.reason": ("问题", "Problem"),
    "col.change": ("变更", "Changes"), "col.touch_on": ("日期", "Date"), "col.channel": ("渠道", "Channel"),
    "col.status": ("状态", "Status"), "col.delivery": ("送达", "Delivery"),
    "why.renew_in_person": ("需本人办理", "Renew in person"), "why.overdue": ("已逾期", "Overdue"),
    "why.failed": ("提醒发送失败", "Delivery failed"), "why.opted_out": ("已退订短信", "Opted out of SMS"),
    "why.lapsed": ("已失效", "Lapsed"),
    "days.left": ("还剩 {n} 天", "{n} days left"), "days.today": ("今天截止", "due today"),
    "days.over": ("已过 {n} 天", "{n} days past"),
    "holders.title": ("员工", "Employees"), "holders.search": ("搜索工号、姓名、手机或邮箱", "Search ID, name, phone or email"),
    "holders.all_stages": ("全部阶段", "All stages"), "holders.go": ("搜索", "Search"),
    "holders.count": ("共 {n} 人", "{n} people"), "holders.none": ("没有符合条件的员工。", "No matching employees."),
    "page.prev": ("上一页", "Previous"), "page.next": ("下一页", "Next"),
    "h.back": ("返回员工列表", "Back to employees"), "h.status": ("当前状态", "Status"),
    "h.auto": ("自动签注", "Auto-renewal"), "h.eligible": ("符合条件", "eligible"),
    "h.auto_not_applicable": ("不适用：居住证已过期，须本人到社区事务受理服务中心办理",
                              "not applicable: the permit has expired; renew in person at the service centre"),
    "h.not_eligible": ("不符合：{reasons}（需本人办理）", "not eligible: {reasons} (renew in person)"),
    "h.accumulated": ("累计持有年限", "Accumulated years"),
    "h.accumulated_value": ("{years} 年（自 {since} 起）", "{years} years (since {since})"),
    "h.unknown": ("未知", "unknown"), "h.housing": ("居住类型", "Housing"),
    "h.rental_ends": ("租赁备案到期", "Rental registration ends"), "h.employer": ("用人单位", "Employer"),
    "h.locale": ("提醒语言", "Reminder language"), "h.opted_out": ("已于 {date} 退订短信", "Opted out of SMS on {date}"),
    "h.failed_hint": ("最近一条提醒未能送达。请直接联系本人，并核对手机号或补充邮箱。",
                      "The latest reminder did not arrive. Contact them directly and check the number, or add an email."),
    "h.message_text": ("消息内容", "What it said"),
    "h.history": ("提醒记录", "Messages"), "h.no_history": ("还没有发送过提醒。", "No reminders yet."),
    "h.renewal": ("确认已签注", "Confirm renewal"),
    "todo.title": ("需要做什么", "What to do"),
    "todo.valid": ("目前无需办理：签注窗口在到期前 30 天开放，届时会提醒员工。", "Nothing to do yet: the endorsement window opens 30 days before expiry, and the employee is reminded then."),
    "todo.upcoming": ("签注窗口已开放：信息未变更的通常会在到期前约 15 天自动签注；否则请本人到社区事务受理服务中心办理。", "The endorsement window is open: with no changes it is usually endorsed automatically about 15 days before expiry; otherwise the employee renews in person at the community affairs service centre."),
    "todo.auto_renewal_window": ("正值自动签注期：留意官方签注成功短信；到期前 10 天仍未收到，请本人去办理。", "Auto-renewal is due about now: watch for the official SMS; without it by 10 days before expiry, the employee renews in person."),
    "todo.renew_in_person": ("请员工本人携下列材料到社区事务受理服务中心办理签注。", "The employee must renew in person at the community affairs service centre, with the materials below."),
    "todo.expired_grace": ("居住证已过期，仍在宽限期内：尽快补办签注，累计年限可继续计算。", "Expired but within the grace period: endorse it soon and the accumulated years keep counting."),
    "todo.accumulation_reset": ("逾期已超过宽限期，累计年限已清零：现在补办签注，居住证可恢复使用，累计年限从零重新计算；再晚则需重新申办。", "Past the grace period, the accumulated years are lost: endorsing now restores the permit and the years count again from zero; later, it must be applied for anew."),
    "todo.lapsed": ("居住证已失效：需重新申办，并至少等待半年。", "The permit has lapsed: a new application is needed, after waiting at least half a year."),
    "todo.deadline_expires_on": ("到期日", "Expires on"), "todo.deadline_grace_ends_on": ("宽限期最后一天", "Grace period ends"),
    "todo.deadline_reset_ends_on": ("失效前最后一天", "Lapses after"),
    "todo.last_working_day": ("最后可办理的工作日", "Last working day to act"),
    "todo.days_left": ("还剩 {n} 天", "{n} days left"), "todo.passed": ("已过 {n} 天", "{n} days ago"),
    "todo.points_materials": ("积分续签临近（积分有效期至 {date}）：单位需准备",
                              "Points renewal coming up (points valid until {date}): what HR prepares"),
    "todo.materials": ("所需材料", "Materials to bring"), "todo.points": ("积分续签风险", "Points renewal risks"),
    "todo.bites_on": ("（{date} 起影响）", "(matters from {date})"),
    "todo.planned": ("接下来的提醒", "Reminders still planned"), "todo.none_planned": ("本周期没有待发送的提醒。", "Nothing more is planned this cycle."),
    "todo.no_channel": ("无可用联系方式", "no contact on file"),
    "h.pause": ("暂停提醒", "Pause reminders"), "h.pause_lead": ("产假、外派等期间不向员工发送任何提醒；结束后只发送当时最新的一条。", "Send the employee nothing for a while (parental leave, a posting abroad); afterwards only the latest reminder goes out."),
    "h.pause_until": ("暂停至（含当天）", "Paused until (inclusive)"), "h.pause_reason": ("原因（可选）", "Reason (optional)"),
    "h.pause_submit": ("暂停提醒", "Pause"), "h.resume_submit": ("恢复提醒", "Resume reminders"),
    "h.paused": ("提醒已暂停至 {date}（{reason}）", "Reminders paused until {date} ({reason})"),
    "flash.paused": ("已暂停提醒至 {date}", "Reminders paused until {date}"), "flash.resumed": ("已恢复提醒", "Reminders resumed"),
    "h.renewal_lead": ("员工完成签注后，填写新的有效期，本周期的提醒即停止。",
                       "Once the permit is endorsed, enter the new expiry date: this cycle's reminders stop."),
    "h.new_expiry": ("新的有效期至", "New expiry date"), "h.renewal_submit": ("确认签注", "Confirm renewal"),
    "h.contact": ("联系信息", "Contact details"),
    "h.contact_lead": ("更换手机号会被视为登记信息变更，本周期将需要本人办理。",
                       "A new phone number counts as changed details: this cycle needs an in-person renewal."),
    "h.phone": ("手机", "Mobile"), "h.email": ("邮箱", "Email"), "h.wecom": ("企业微信账号", "WeCom account"), "h.save": ("保存", "Save"),
    "h.delete": ("删除员工", "Delete employee"),
    "h.delete_lead": ("将永久删除该员工及其全部提醒记录，无法恢复。",
                      "Permanently erases this employee and all their reminders. This cannot be undone."),
    "h.delete_submit": ("永久删除", "Delete permanently"),
    "flash.renewed": ("已确认签注，新的有效期至 {date}。", "Renewal confirmed: now valid until {date}."),
    "flash.saved": ("联系信息已保存。", "Contact details saved."),
    "flash.deleted": ("已删除员工 {id}。", "Employee {id} deleted."),
    "flash.imported": ("导入完成：新增 {new} 人，更新 {updated} 人，未变 {unchanged} 人。",
                       "Imported: {new} new, {updated} updated, {unchanged} unchanged."),
    "err.renewal_not_later": ("新的有效期必须晚于当前有效期 {date}。", "The new expiry must be after the current one, {date}."),
    "err.pause_past": ("暂停截止日 {until} 已经过去（今天是 {today}），请选择今天或以后的日期。",
                       "{until} is in the past (today is {today}): choose today or a later day."),
    "err.pause_too_far": ("暂停截止日 {until} 超过两年：员工如已离职，请删除其信息。",
                          "{until} is more than two years away: for someone who has left, delete them instead."),
    "err.pause_reason": ("暂停原因最多 200 个字，且不能包含控制字符。",
                         "The reason can be at most 200 characters, without control characters."),
    "err.not_paused": ("该员工的提醒没有暂停。", "This holder's reminders are not paused."),
    "err.date": ("请填写有效日期。", "Please enter a valid date."),
    "up.title": ("导入花名册", "Import roster"),
    "up.lead": ("上传 Excel（.xlsx）或 CSV 文件。导入前会先显示将发生的变更，确认后才会写入。",
                "Upload an Excel (.xlsx) or CSV file. You will see what changes before anything is saved."),
    "up.file": ("选择文件", "Choose file"), "up.submit": ("上传并预览", "Upload and preview"),
    "up.template": ("下载模板", "Download template"), "up.template_xlsx": ("Excel 模板", "Excel template"),
    "up.template_csv": ("CSV 模板", "CSV template"),
    "up.columns": ("必填列：工号、居住证有效期至，以及手机或邮箱之一。",
                   "Required columns: 工号 (ID), 居住证有效期至 (expiry), and 手机 (mobile) or 邮箱 (email)."),
    "up.uploading": ("正在上传…", "Uploading…"), "up.checking": ("正在校验，请稍候…", "Checking rows, please wait…"),
    "up.too_large": ("文件太大，无法上传。", "The file is too large to upload."),
    "up.failed": ("上传失败，请检查网络后重试。", "Upload failed. Check your connection and try again."),
    "up.no_file": ("请先选择文件。", "Please choose a file first."),
    "up.file_error": ("无法读取此文件", "This file could not be read"),
    "pv.title": ("导入预览", "Import preview"), "pv.file": ("文件：{name}，共 {rows} 行数据", "File: {name}, {rows} data rows"),
    "pv.new": ("新增", "New"), "pv.updated": ("更新", "Updated"), "pv.unchanged": ("未变", "Unchanged"),
    "pv.rejected": ("有误", "Rejected"), "pv.renewed": ("已续签", "renewed"),
    "pv.rejected_lead": ("以下行有误，整份文件暂不能导入。请在表格中修改后重新上传。",
                         "These rows have problems, so the file cannot be imported yet. Fix them and upload again."),
    "pv.ok_lead": ("核对无误后点击“确认导入”。在此之前不会写入任何数据。",
                   "Check the changes, then confirm. Nothing is saved until you do."),
    "pv.after_fix": ("（修正错误后才会导入）", "(imported once the errors are fixed)"),
    "pv.consequences": ("确认后将发生", "What confirming does"),
    "pv.enqueued": ("将立即发出 {n} 条提醒（今天到期的提醒）。", "{n} reminder(s) due today go out at once."),
    "pv.enqueued_none": ("不会立即发出提醒。", "No reminder goes out at once."),
    "pv.losing": ("以下 {n} 人因手机、单位或住址变更，本周期将无法自动签注，需本人办理：",
                  "{n} holder(s) lose auto-renewal this cycle because their phone, employer or address changed, and must renew in person:"),
    "pv.leavers": ("这是完整花名册：以下 {n} 名员工不在文件中，视为离职，确认导入时将删除其全部信息（个人信息保护法要求不再保留）。",
                   "This is a complete roster: these {n} holders are not in the file and have left; confirming deletes everything held on them (PIPL)."),
    "pv.no_leavers": ("这是完整花名册：系统中的员工都在文件里，没有人会被删除。",
                      "This is a complete roster: everyone on file is in it, nobody is deleted."),
    "pv.leavers_confirm": ("我确认删除这 {n} 名离职员工", "Yes, delete these {n} leavers"),
    "pv.leavers_tick": ("请勾选确认删除离职员工后再导入。", "Tick the box to confirm deleting the leavers, then import."),
    "pv.changed": ("已变更", "changed"),
    "pv.earlier_title": ("有效期早于系统记录", "Expiry earlier than on file"),
    "pv.earlier_lead": ("以下员工在文件中的有效期早于系统中的有效期。花名册不会自动把有效期往前改（例如旧花名册会撤销已确认的续签）。如确系更正录入错误，请勾选后重新预览。",
                        "For these employees the file's expiry is earlier than the one on file. A roster never moves an expiry back on its own (an old roster would undo a confirmed renewal). If these rows correct a typo, tick the box and preview again."),
    "pv.earlier_row": ("第 {row} 行 {id}：系统 {on_file} → 文件 {in_file}", "row {row} {id}: on file {on_file} → in file {in_file}"),
    "pv.earlier_confirm": ("这些行是在更正录入错误，允许把有效期改早", "These rows correct a typo: allow the earlier expiry"),
    "pv.earlier_submit": ("重新预览", "Preview again"),
    "pv.earlier_allowed": ("已允许将有效期改早（更正录入错误）。", "Earlier expiry dates are allowed (correcting a typo)."),
    "pv.counts": ("共 {total} 处问题，按原因统计：", "{total} problems in all, by reason:"),
    "pv.confirm": ("确认导入", "Confirm import"), "pv.cancel": ("取消", "Cancel"),
    "pv.reupload": ("重新上传", "Upload again"), "pv.more": ("另有 {n} 行未显示", "{n} more rows not shown"),
    "pv.nothing": ("没有变化。", "Nothing changes."), "pv.gone": ("此预览已失效，请重新上传。", "This preview has expired. Please upload again."),
    "field.address": ("地址", "address"), "field.expires_on": ("有效期", "expiry"),
    "err.title": ("出错了", "Something went wrong"), "err.home": ("返回概览", "Back to overview"),
    "err.404": ("页面不存在，或您无权查看。", "This page does not exist, or you may not see it."),
    "err.role": ("您的角色无权执行此操作（查看者只能查看；导入和修改需要编辑者；用户和令牌需要管理员）。",
                 "Your role does not allow this (viewers read; editors change and import; admins manage users and tokens)."),
    "err.403": ("页面已过期或请求来源无效，请刷新页面后重试。", "This form has expired or came from elsewhere. Reload the page and try again."),
    "err.400": ("提交的内容无效，请检查后重试。", "The submitted data was not valid. Please check it and try again."),
    "err.500": ("服务器暂时出错，请稍后再试。已记录此问题。", "Something went wrong on our side. Please try again later."),
    "footer": ("数据仅限本团队查看 · 地址仅以指纹形式保存", "Visible to your team only · addresses are kept only as fingerprints"),
}

# Stage and reason labels are the domain's vocabulary, shared with the digest, the CLI and explain.
STAGES: dict[str, tuple[str, str]] = STAGE_LABELS
REASONS: dict[str, tuple[str, str]] = REASON_LABELS
AUTO_RENEWAL: dict[str, tuple[str, str]] = AUTO_RENEWAL_LABELS
WORDS: dict[str, tuple[str, str]] = {
    "sms": ("短信", "SMS"), "email": ("邮件", "Email"), "wecom": ("企业微信", "WeCom"), "pending": ("待发送", "pending"),
    "sending": ("发送中", "sending"), "sent": ("已发送", "sent"), "failed": ("失败", "failed"),
    "cancelled": ("已取消", "cancelled"), "queued": ("排队中", "queued"), "delivered": ("已送达", "delivered"),
    "undelivered": ("未送达", "undelivered"), "own": ("自有住房", "own home"), "relative": ("亲属住房", "relative's home"),
    "rental": ("租赁住房", "rented"), "dormitory": ("集体宿舍", "dormitory"), "zh-CN": ("中文", "Chinese"),
    "en": ("英文", "English"),
}
_COLUMN_ZH = {column: title for title, column in CHINESE_HEADERS.items()}
# Roster validation reasons (worker.registry.roster, worker.registry.roster_xlsx) -> Chinese; {0} is a captured number.
_ROSTER_ZH: list[tuple[re.Pattern[str], str]] = [(re.compile(p), zh) for p, zh in (
    (r"required", "必填"), (r"missing column", "缺少此列"), (r"missing column \(need phone or email\)", "缺少手机或邮箱列"),
    (r"duplicate column", "列名重复"), (r"duplicate of row (\d+)", "工号与第 {0} 行重复"),
    (r"longer than (\d+) characters", "超过 {0} 个字符"), (r"not a mainland China mobile number", "不是有效的中国大陆手机号"),
    (r"not an email address", "不是有效的邮箱地址"), (r"not a date \(use YYYY-MM-DD\)", "日期格式不对（请用 YYYY-MM-DD）"),
    (r"not a real calendar date", "日期不存在"), (r"must be one of own, relative, rental, dormitory", "只能填 自有、亲属、租赁 或 宿舍"),
    (r"must be one of education, title, social_insurance_multiple.*", "只能填 学历、职称 或 社保倍数"),
    (r"a WeCom account alone needs the team's channels to include wecom.*", "本团队的发送渠道未包含企业微信：请同时填写手机或邮箱，或将渠道设为 wecom,sms,email"),
    (r"not a WeCom userid.*", "不是有效的企业微信账号（只能用字母、数字和 _-@.，以字母或数字开头）"),
    (r"must be zh-CN or en", "只能填 中文 或 英文"), (r"phone or email is required", "手机和邮箱至少填一项"),
    (r"empty file", "文件是空的"), (r"no data rows", "文件里没有数据行"), (r"not UTF-8 or GBK text", "文件编码无法识别（请用 UTF-8 或 GBK）"),
    (r"not a readable \.xlsx workbook", "不是可读取的 .xlsx 文件"), (r"workbook is too large to read", "工作簿过大，无法读取"),
    (r"old \.xls files are not supported.*", "不支持旧版 .xls 文件，请另存为 .xlsx 或 CSV"),
    (r"more than (\d+) data rows", "数据超过 {0} 行"), (r"malformed csv.*", "CSV 格式有误"),
    (r"contains a control character.*", "含有控制字符（如 NUL），请删除"),
    (r"earlier than the expiry on file \(([0-9-]+)\);.*", "早于系统中的有效期（{0}）：如系更正录入错误，请勾选“允许改早”"),
    (r"earlier than the expiry on file", "早于系统中的有效期"), (r"duplicate of an earlier row", "工号与前面的行重复"),
    (r"longer than allowed", "超过长度上限"), (r"after the contract's end \(([0-9-]+)\)", "晚于劳动合同到期日（{0}）"),
    (r"after the contract's end", "晚于劳动合同到期日"),
)]

DEADLINES: dict[str, tuple[str, str]] = DEADLINE_LABELS


def pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def translate(lang: str, key: str, **values: Any) -> str:
    pair = TEXT.get(key)
    return pick(pair, lang).format(**values) if pair else key


def word(lang: str, table: dict[str, tuple[str, str]], key: str | None) -> str:
    if key is None:
        return ""
    pair = table.get(key)
    return pick(pair, lang) if pair else key


def column_label(lang: str, column: str) -> str:
    if column == "file":
        return "文件" if lang != "en" else "file"
    return column if lang == "en" else _COLUMN_ZH.get(column, column)


def status_reason(lang: str, reason: str | None) -> str:
    """A stored reason in HR's words (schedules/vocabulary.py: the table that also wrote it)."""
    return reason_label(reason, lang)


def roster_error(lang: str, reason: str) -> str:
    if lang == "en":
        return reason
    for pattern, zh in _ROSTER_ZH:
        match = pattern.fullmatch(reason)
        if match:
            return zh.format(*match.groups())
    return reason
